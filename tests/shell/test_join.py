"""`peninsula ps` and `peninsula exec --session`: joining a live session
from outside it (an IDE terminal, say)."""

import json

from .conftest import supervised


def _session(user, home, term) -> dict:
    ours = term.run('echo "id=$PENINSULA_SESSION"').split("id=")[-1].split()[0]
    result = user.peninsula("ps", "--json", env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    mine = [s for s in found if s["session"] == ours]
    assert len(mine) == 1, result.stdout
    return mine[0]


def test_exec_joins_with_the_shells_current_state(term_factory, home, user):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    session = _session(user, home, term)
    assert "confined to " + str(home / "proj") in session["shell_state"]
    script = "echo joined > inside-joined; echo out > ../out/joined; echo rc=$?"
    result = user.peninsula("exec", "--session", session["session"], "--", "sh", "-c", script,
                            cwd=home / "proj", env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert b"rc=2" in result.stdout
    assert (home / "proj" / "inside-joined").read_text() == "joined\n"
    assert not (home / "out" / "joined").exists()
    assert b"Permission denied" in result.stderr

    # Once the shell has left the project, a joining command is not confined.
    term.run("cd ..")
    term.prompt()
    result = user.peninsula("exec", "--session", session["session"], "--", "sh", "-c", "echo out > out/later; exit 3",
                            cwd=home, env={"HOME": str(home)})
    assert result.returncode == 3, result.stderr
    assert (home / "out" / "later").read_text() == "out\n"


def test_exec_is_refused_to_confined_callers(term_factory, home, user):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    text = term.run("python3 -m peninsula exec --session $PENINSULA_SESSION -- sh -c 'echo x > ../out/escape'; echo rc=$?")
    assert "refused: the caller runs confined" in text
    assert "rc=125" in text
    assert not (home / "out" / "escape").exists()


def test_exec_to_unknown_session(user, home):
    result = user.peninsula("exec", "--session", "no-such", "--", "true", env={"HOME": str(home)})
    assert result.returncode == 125
    assert b"no session no-such" in result.stderr
