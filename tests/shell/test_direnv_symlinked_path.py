"""A project reached through a path with a symlink in it (the user's own
~/w -> ~/p1, or a symlinked $HOME) stays loaded: direnv records the
physical DIRENV_FILE, and the hook's leave check, from the physical
directory too, finds that same file at every prompt. Its .envrc runs once,
not at each prompt. Controls: entering by the physical path loads once;
direnv alone (PENINSULA_DISABLE=1) loads once through the symlink.
"""

from __future__ import annotations

import os

import pytest

from .conftest import furnish, SHELLS, Term, supervised


@pytest.fixture
def layout(user):
    home = user.mkdir(user.base / "home")
    p1 = user.mkdir(home / "p1")
    user.write(p1 / ".envrc", "echo ran >> .runs\nexport IN_P1=1\n")
    os.symlink(p1, home / "w")
    os.symlink(home, user.base / "home-link")
    os.lchown(user.base / "home-link", user.uid, user.gid)
    return furnish(user, home, [p1])


def _runs(home) -> int:
    return (home / "p1" / ".runs").read_text().count("ran")


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("where", ["w", "p1", "home-link"])
def test_the_envrc_runs_once(user, layout, shell, where):
    home = layout
    # A symlinked $HOME: the shell starts there, and ~/p1 is under it.
    start = user.base / "home-link" if where == "home-link" else home
    term = Term(user, start, shell).start()
    try:
        supervised(term)
        term.run(f"cd ~/{'p1' if where == 'home-link' else where}")
        for _ in range(4):
            term.prompt()
        text = term.run('echo "in=[$IN_P1] state=[$PENINSULA_PROMPT] file=[$DIRENV_FILE]"')
        assert f"in=[1] state=[[peninsula: p1] ] file=[{home}/p1/.envrc]" in text, text
        assert _runs(home) == 1, term.screen()
    finally:
        term.close()


def test_control_direnv_alone_loads_once_through_the_symlink(user, layout):
    home = layout
    term = Term(user, home, "bash", {"PENINSULA_DISABLE": "1"}).start()
    try:
        term.run("cd ~/w")
        for _ in range(4):
            term.prompt()
        assert _runs(home) == 1, term.screen()
    finally:
        term.close()
