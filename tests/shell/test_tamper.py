"""Invariants 4 and 5 in a real shell: nothing a confined process sends,
writes or runs lifts a restriction."""

import socket

import pytest

from .conftest import supervised


@pytest.fixture
def inside(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    return term


def test_allow_and_trust_are_refused_inside(inside, home):
    text = inside.run("python3 -m peninsula allow ../out; echo allow-rc=$?")
    assert "refused: this command runs confined to " + str(home / "proj") in text
    assert "allow-rc=125" in text
    assert not (home / "proj" / ".peninsula.toml").exists()
    text = inside.run("python3 -m peninsula trust; echo trust-rc=$?")
    assert "trust-rc=125" in text
    # The same commands work once the shell has left the project.
    inside.run("cd ..")
    inside.prompt()
    text = inside.run("python3 -m peninsula allow --global out/allowed; echo allow-rc=$?")
    assert "allow-rc=0" in text
    assert str(home / "out" / "allowed") in (home / ".config" / "peninsula" / "config.toml").read_text()


def test_confined_process_cannot_edit_config_or_hooks(inside, home):
    config = home / ".config" / "peninsula" / "config.toml"
    before = config.read_text()
    inside.run("mkdir -p .git/hooks")
    inside.run(f"echo 'write = [\"/\"]' >> {config}")
    inside.run("echo evil > .git/hooks/pre-commit; echo fine > .git/hooks/pre-commit.sample")
    inside.run("echo 'echo pwned' >> ../.bashrc")
    assert config.read_text() == before
    assert not (home / "proj" / ".git" / "hooks" / "pre-commit").exists()
    assert (home / "proj" / ".git" / "hooks" / "pre-commit.sample").read_text() == "fine\n"
    assert "pwned" not in (home / ".bashrc").read_text()


def test_editing_or_deleting_envrc_does_not_end_the_project(inside, home):
    # Allowed (it is inside the project), but direnv has not allowed the new
    # content: the project must stay a project for new commands.
    inside.run("echo 'export EVIL=1' >> .envrc; rm -f .envrc")
    inside.prompt()
    inside.run("sh -c 'echo x > ../out/after-envrc'")
    assert not (home / "out" / "after-envrc").exists()


def test_control_channel_gives_nothing(inside, home):
    # A confined process may talk to the control socket; it can only ask.
    script = (
        "import json,os,socket;s=socket.socket(socket.AF_UNIX);"
        "s.connect(os.environ['PENINSULA_SESSION_DIR']+'/control.sock');"
        "s.sendall(json.dumps({'op':'allow','path':'/'}).encode()+b'\\n');print(s.recv(4096))"
    )
    text = inside.run(f'python3 -c "{script}"')
    assert "unknown request" in text
    inside.run("echo garbage > $PENINSULA_SESSION_DIR/control.sock; echo x > $PENINSULA_SESSION_DIR/state")
    inside.run("sh -c 'echo x > ../out/after-control'")
    assert not (home / "out" / "after-control").exists()
    assert "[peninsula: proj]" in inside.run("true")
