"""cd through a symlink that a confined process made in p1, pointing out of
p1 (into p2, or into a directory beside the projects): p1's environment is
unloaded before the prompt ping, under p1's state.

direnv finds the .envrc from the physical directory (it drops $PWD), and
the supervisor judges the physical directory (~/p2/sub, under p2/.envrc);
the logical $PWD (~/p1/link) still lies under p1/.envrc. p1's environment points direnv at
a configuration inside p1 (XDG_CONFIG_HOME), whose bash_path is p1's own
program: if direnv runs with that environment after the ping, it runs
p1's program, under the new state, to load the destination's .envrc. That
program leaves a marker in the destination, a place p1's processes may not
write. Positive control: the same session with PENINSULA_DISABLE=1 leaves
the marker (direnv runs p1's program there).
"""

from __future__ import annotations

import os

import pytest

from .conftest import furnish, SHELLS, Term, supervised

# direnv runs it as bash to evaluate the destination's .envrc, in its directory.
P1_BASH = '#!/bin/sh\necho "p1\'s program ran here" > "ran-bash-$$"\nexec /bin/bash "$@"\n'


@pytest.fixture
def layout(user):
    home = user.mkdir(user.base / "home")
    p1, p2, out = (user.mkdir(home / name) for name in ("p1", "p2", "out"))
    user.mkdir(p2 / "sub")
    user.mkdir(out / "sub")
    user.write(p1 / ".envrc", f"export XDG_CONFIG_HOME={p1}/cfg\n")
    user.mkdir(p1 / "cfg")
    user.mkdir(p1 / "cfg" / "direnv")
    user.write(p1 / "cfg" / "direnv" / "direnv.toml", f'[global]\nbash_path = "{p1}/bash"\n')
    os.chmod(user.write(p1 / "bash", P1_BASH), 0o755)
    user.write(p2 / ".envrc", "export IN_P2=1\n")
    user.write(out / ".envrc", "export IN_OUT=1\n")
    return furnish(user, home, [p1, p2, out])


def _markers(directory) -> list[str]:
    return sorted(p.name for p in directory.rglob("ran-*"))


def _go(user, home, shell, target: str, via_link: bool, env=None) -> str:
    term = Term(user, home, shell, env).start()
    try:
        if env is None:
            supervised(term)
        term.run("cd ~/p1")
        term.prompt()
        term.run('echo "loaded=[$XDG_CONFIG_HOME]"')
        # Made by the shell while it is confined to p1 (any confined process could).
        term.run(f"ln -sfn ~/{target}/sub link")
        term.prompt()
        term.run(f"cd {'link' if via_link else '~/' + target + '/sub'}")
        term.prompt()
        term.run('echo "state=[$PENINSULA_PROMPT] file=[$DIRENV_FILE]"')
        return term.screen()
    finally:
        term.close()


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("target", ["out", "p2"])
def test_a_symlink_out_of_the_project_unloads_it_first(user, layout, shell, target):
    home = layout
    screen = _go(user, home, shell, target, via_link=True)
    assert f"loaded=[{home}/p1/cfg]" in screen, screen  # p1's environment was there to leave
    assert f"file=[{home}/{target}/.envrc]" in screen, screen  # the destination's .envrc, loaded
    assert _markers(home / target) == [], screen


@pytest.mark.parametrize("shell", SHELLS)
def test_a_plain_cd_unloads_it_first(user, layout, shell):
    home = layout
    screen = _go(user, home, shell, "p2", via_link=False)
    assert f"file=[{home}/p2/.envrc]" in screen, screen
    assert _markers(home / "p2") == [], screen


@pytest.mark.parametrize("target", ["out", "p2"])
def test_control_without_peninsula_direnv_runs_p1s_program(user, layout, target):
    home = layout
    screen = _go(user, home, "bash", target, via_link=True, env={"PENINSULA_DISABLE": "1"})
    assert f"file=[{home}/{target}/.envrc]" in screen, screen
    assert _markers(home / target) != [], screen
