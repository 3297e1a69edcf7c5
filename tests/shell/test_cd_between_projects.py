"""cd from one project straight into another (issue 13).

The move is strict (temp dirs only) until the next prompt. There the old
project's environment is unloaded first, still strict (it must not reach
the new state: test_direnv_leave_confined.py), then the prompt ping, then
direnv loads the new project's .envrc under it.
"""

from __future__ import annotations


import pytest

from .conftest import furnish, SHELLS, Term, supervised

DENIED = "peninsula: denied"
# What `layout python` does in small: write beneath the project's .direnv.
ENVRC = "mkdir -p .direnv && echo loaded > .direnv/mark\nexport LOADED_{name}=1\n"


@pytest.fixture
def two_projects(who):
    home = who.mkdir(who.base / "home")
    for name in ("p1", "p2"):
        who.mkdir(home / name)
        who.write(home / name / ".envrc", ENVRC.format(name=name))
    return furnish(who, home, [home / "p1", home / "p2"])


def _denials(home) -> list[str]:
    log = home / ".local" / "state" / "peninsula" / "denials.jsonl"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("shell", SHELLS)
def test_the_new_projects_envrc_loads_under_it(who, two_projects, shell):
    home = two_projects
    term = Term(who, home, shell).start()
    try:
        supervised(term)
        term.run("cd ~/p1")
        term.prompt()
        assert (home / "p1" / ".direnv" / "mark").exists(), term.screen()
        assert _denials(home) == []
        # Straight into p2, and a command on the same line: before the
        # prompt, still strict (whatever the ping's order), so refused.
        text = term.run("cd ~/p2 && touch started-before-the-prompt", timeout=30)
        assert not (home / "p2" / "started-before-the-prompt").exists(), text
        # At the prompt: p2's .envrc ran under p2.
        text = term.run('echo "loaded=$LOADED_p2"')
        assert "loaded=1" in text and (home / "p2" / ".direnv" / "mark").exists(), text
        text = term.run("touch after-the-prompt")
        assert (home / "p2" / "after-the-prompt").exists(), text
        denials = _denials(home)
        assert len(denials) == 1 and "started-before-the-prompt" in denials[0], denials
    finally:
        term.close()
