"""Invariant 1 in real shells: cd into a project confines, leaving lifts."""

import pytest

from .conftest import SHELLS, supervised


@pytest.mark.parametrize("shell", SHELLS)
def test_enter_confines_and_leave_lifts(term_factory, home, shell):
    term = term_factory(shell)
    supervised(term)
    term.run("cd proj")
    term.run("echo in > inside; echo out > ../out/x")
    assert (home / "proj" / "inside").read_text() == "in\n"
    assert not (home / "out" / "x").exists()
    assert "denied open of " + str(home / "out" / "x") in term.screen()
    term.run("cd ..")
    term.run("echo out > out/y")
    assert (home / "out" / "y").read_text() == "out\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_command_on_the_same_line_as_cd_is_confined(term_factory, home, shell):
    term = term_factory(shell)
    supervised(term)
    term.run("cd proj; and sh -c 'echo x > ../out/same'" if shell == "fish" else "cd proj && sh -c 'echo x > ../out/same'")
    assert not (home / "out" / "same").exists()
    assert "denied open of " + str(home / "out" / "same") in term.screen()


@pytest.mark.parametrize("shell", SHELLS)
def test_background_job_stays_confined_after_leaving(term_factory, home, shell):
    term = term_factory(shell)
    supervised(term)
    term.run("cd proj")
    # The job and its child try to write outside only after the shell has left.
    job = "sh -c 'sleep 2; echo bg > ../out/bg; sh -c \"echo child > ../out/child\"' &"
    term.run(job)
    term.run("cd ..")
    term.run("echo lifted > out/now")
    term.run("sleep 3")
    assert (home / "out" / "now").read_text() == "lifted\n"
    assert not (home / "out" / "bg").exists()
    assert not (home / "out" / "child").exists()


@pytest.mark.parametrize("shell", ["bash"])
def test_prompt_variable_and_status(term_factory, home, shell):
    term = term_factory(shell)
    supervised(term)
    term.run("cd proj")
    term.prompt()
    assert "[peninsula: proj]" in term.screen()
    text = term.run("peninsula status || python3 -m peninsula status")
    assert "confined to " + str(home / "proj") in text
    text = term.run("python3 -m peninsula check ../out/f; python3 -m peninsula check inside")
    assert str(home / "out" / "f") + ": DENIED" in text
    assert str(home / "proj" / "inside") + ": allowed" in text


@pytest.mark.parametrize("shell", ["bash"])
def test_other_process_walking_into_project_is_confined(term_factory, home, shell):
    term = term_factory(shell)
    supervised(term)
    # Started outside any project, this subshell walks in: from then on it
    # (and what it starts) is confined too.
    term.run("(cd proj && sh -c 'echo x > ../out/sub')")
    assert not (home / "out" / "sub").exists()
    term.run("echo ok > out/ok")
    assert (home / "out" / "ok").exists()


@pytest.mark.parametrize("shell", ["bash"])
def test_compiled_hot_path_serves_the_session(term_factory, home, shell):
    """The session's confined writes are answered by the compiled hot path
    (when it is built, as setup.sh builds it), refusals still by Python."""
    import json

    term = term_factory(shell)
    supervised(term)
    term.run("cd proj")
    term.run("for i in 1 2 3 4 5 6 7 8 9 10; do echo $i > f$i; chmod 600 f$i; done; sh -c 'echo x > ../out/z'")
    assert not (home / "out" / "z").exists()
    assert "denied open of " + str(home / "out" / "z") in term.screen()
    term.run("python3 -m peninsula status --json > status.json")
    reply = json.loads((home / "proj" / "status.json").read_text())
    assert reply["compiled_requests"] is not None, "the compiled hot path is not built"
    assert reply["compiled_requests"] >= 10, reply
    assert all((home / "proj" / f"f{i}").read_text() == f"{i}\n" for i in range(1, 11))
