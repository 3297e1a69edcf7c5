"""A confined process poses as the session: a project's .envrc (which a
confined process may write and `direnv allow`) points PENINSULA_SESSION_DIR
at a directory of the project where a listener of its own answers on
control.sock. Neither the sudo shim (it has the session directory written
into it, and wants its own supervisor as the peer) nor a nested `peninsula
run` (it wants its own supervisor as the peer) may believe it."""

from __future__ import annotations

import time

import pytest

from .conftest import PENINSULA, SHELLS, supervised
from .test_sudo import REFUSED, _lines, sudo_rule  # noqa: F401 (a fixture)

# Takes the terminal fds a shim would send and prompts for the sudo password
# on them; answers every request as a session would, nest requests included.
FAKE = r'''
import json, os, socket, sys
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(os.path.join(d, "control.sock")); s.listen(8)
open(os.path.join(d, "ready"), "w").close()
while True:
    c, _ = s.accept()
    try:
        msg, fds, _, _ = socket.recv_fds(c, 1 << 20, 8)
        with open(os.path.join(d, "log"), "a") as f:
            f.write(f"request fds={len(fds)}\n")
        if fds:
            os.write(fds[1], b"[sudo] password for you: ")
        c.sendall(b'{"state": "fake-session", "pid": 1}\n{"exit": 0}\n')
    except OSError:
        pass  # a caller that hung up on us
    c.close()
'''
# A confined client asking whatever $PENINSULA_SESSION_DIR names: shows the
# fake is up and named by the environment (the attack's positive control).
ASK = ("python3 -c 'import json, os, socket; c = socket.socket(socket.AF_UNIX); "
       "c.connect(os.environ[\"PENINSULA_SESSION_DIR\"] + \"/control.sock\"); "
       "c.sendall(b\"{}\\n\"); print(\"answer:\", c.makefile().readline().strip())'")


def _plant(term, home):
    """The .envrc and the listener, made inside the project by the shell there."""
    proj, fake = home / "proj", home / "proj" / "fake"
    (proj / "fake.py").write_text(FAKE)
    # direnv sees a changed .envrc by its mtime in whole seconds: one
    # written in the second it was loaded would not be reloaded.
    term.run(f"sleep 1.1; printf 'export PENINSULA_SESSION_DIR={fake}\\n' > .envrc; direnv allow .")
    term.prompt()
    term.run(f"python3 fake.py {fake} >/dev/null 2>&1 &")
    for _ in range(100):
        if (fake / "ready").exists():
            break
        time.sleep(0.1)
    text = term.run(f"echo mark-ask; {ASK}")
    assert "answer: {\"state\": \"fake-session\"" in _lines(text, "mark-ask\n")[0], text
    return fake


@pytest.mark.parametrize("shell", SHELLS)
def test_sudo_shim_ignores_a_fake_session(term_factory, sudo_rule, home, shell):  # noqa: F811
    term = term_factory(shell)
    supervised(term)
    status = "$status" if shell == "fish" else "$?"
    term.run("cd proj")
    term.prompt()
    fake = _plant(term, home)
    # Typed by full path and by name: the real session answers (and refuses,
    # inside a project); the fake hears nothing.
    for index, typed in enumerate(("/usr/bin/sudo", "sudo")):
        text = term.run(f"echo mark-{index}; {typed} -n true; echo rc={status}")
        after = _lines(text, f"mark-{index}\n")
        assert after[0].startswith(f"peninsula: {REFUSED}{home / 'proj'}"), text
        assert after[1] == "rc=1" and "password" not in text, text
    assert not (fake / "log").read_text().count("fds=4"), (fake / "log").read_text()
    # The shim's peer check on its own: pointed at the fake, it refuses
    # before anything is sent.
    direct = ("python3 -c 'import os, sys; from peninsula.shell.privileged import run_outside; "
              "sys.exit(run_outside(os.environ[\"PENINSULA_SESSION_DIR\"], \"/usr/bin/sudo\", [\"sudo\", \"-v\"]))'")
    text = term.run(f"echo mark-d; {direct}; echo rc={status}")
    after = _lines(text, "mark-d\n")
    assert "is not served by this session's supervisor" in after[0] and "rc=1" in after[1:3], text
    assert "password" not in text and "fds=4" not in (fake / "log").read_text()
    # Positive control: out of the project the same shim reaches the real
    # session and sudo runs with its privilege.
    term.run("cd ~")
    term.prompt()
    text = term.run(f"echo mark-o; sudo -n id -u; echo rc={status}")
    assert _lines(text, "mark-o\n")[:2] == ["0", "rc=0"], text


def test_nested_run_ignores_a_fake_session(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    proj = home / "proj"
    term.run("cd proj && mkdir -p out")
    term.prompt()
    nested = (f"{PENINSULA} run --project {proj}/out -- sh -c "
              f"'echo x > {proj}/outside-out-$N; echo inner=$?; echo y > {proj}/out/in-out-$N'; echo rc=$?")
    # Positive control: the real session narrows the nested run.
    text = term.run(f"echo mark-r; N=real {nested}", timeout=40)
    assert "rc=0" in _lines(text, "mark-r\n") and not (proj / "outside-out-real").exists(), text
    assert (proj / "out" / "in-out-real").exists(), text
    _plant(term, home)
    text = term.run(f"echo mark-f; N=fake {nested}", timeout=40)
    after = _lines(text, "mark-f\n")
    assert "rc=0" not in after and "inner=" not in text.split("mark-f\n", 1)[1], text
    assert "the session's supervisor did not answer" in text, text
    assert not (proj / "outside-out-fake").exists() and not (proj / "out" / "in-out-fake").exists(), text
