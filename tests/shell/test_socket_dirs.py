"""tmux and screen in a shell session (config/socketdirs.py): inside a
project they get that project's own socket directory (TMUX_TMPDIR,
SCREENDIR), put back when the shell leaves, so that the outside shell's
tmux and screen are the user's own again; the user's own places
(/tmp/tmux-UID, /run/screen/S-USER, $XDG_RUNTIME_DIR/gnupg) and another
project's directory cannot be planted by a confined process.

(`tmux new-window` from a project, in a shell that runs inside the user's
tmux, with TMUX_TMPDIR pointed at the project's directory: refused at its
connect to $TMUX, tests/shell/test_sockets.py.)
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import uuid
from pathlib import Path

import pytest
from socket_plant import PLANT, ROUTES

from .conftest import supervised


def _dirs(text: str) -> tuple[str, str]:
    found = re.findall(r"^dirs=\[(.*)\]\[(.*)\]$", text, re.M)
    return found[-1]


SHOW = 'echo "dirs=[$TMUX_TMPDIR][$SCREENDIR]"'


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_project_gets_its_own_and_leaving_gives_the_users_back(term_factory, home, user, shell):
    # The user's screen directory, as screen makes it at its first use
    # outside a session (inside one it cannot: /run/screen is outside the
    # baseline), so that `screen -ls` below names it on a fresh machine too.
    screen_dir = Path(f"/run/screen/S-{user.name}")
    if not screen_dir.exists():
        user.mkdir(screen_dir)
        os.chmod(screen_dir, 0o700)
    term = term_factory(shell, env={"TMUX_TMPDIR": "/tmp"})  # the user's own choice, kept
    supervised(term)
    assert _dirs(term.run(SHOW)) == ("/tmp", "")
    term.run("cd proj")
    term.prompt()
    own, screendir = _dirs(term.run(SHOW))
    assert Path(own).parent == Path(f"/tmp/peninsula-sockets-{user.uid}") and screendir == f"{own}/screen", (own, screendir)
    info = os.lstat(own)
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == user.uid
    # A server started inside is the project's own.
    term.run("tmux -L pt-in -f /dev/null new-session -d 'sleep 30'")
    assert os.path.lexists(f"{own}/tmux-{user.uid}/pt-in"), term.screen()
    assert stat.S_ISSOCK(os.lstat(f"{own}/tmux-{user.uid}/pt-in").st_mode)
    assert not os.path.lexists(f"/tmp/tmux-{user.uid}/pt-in")
    term.run("tmux -L pt-in kill-server")
    term.run("cd ..")
    term.prompt()
    assert _dirs(term.run(SHOW)) == ("/tmp", "")
    # Outside again, tmux and screen use the user's own places.
    tag = uuid.uuid4().hex[:8]
    try:
        term.run(f"tmux -L pt-out-{tag} -f /dev/null new-session -d 'sleep 30'")
        assert os.path.lexists(f"/tmp/tmux-{user.uid}/pt-out-{tag}"), term.screen()
        assert stat.S_ISSOCK(os.lstat(f"/tmp/tmux-{user.uid}/pt-out-{tag}").st_mode)
        # (screen cannot start a server here: /run/screen is outside the
        # session's Landlock baseline; it looks in the user's own place.)
        text = term.run(f"screen -ls pt{tag}")
        assert f"/run/screen/S-{user.name}" in text, text
        assert "denied" not in term.screen(), term.screen()
    finally:
        term.run(f"tmux -L pt-out-{tag} kill-server")


def test_confined_processes_cannot_plant_the_users_or_another_projects_sockets(term_factory, home, user):
    tag = uuid.uuid4().hex[:8]
    runtime = user.mkdir(user.base / "rt")
    os.chmod(runtime, 0o700)
    gnupg = user.mkdir(runtime / "gnupg")
    os.chmod(gnupg, 0o700)
    # The user's own tmux and screen directories, made as the tools make
    # them if missing (and left: a server of the user may have come to use them).
    tmux, screen = Path(f"/tmp/tmux-{user.uid}"), Path(f"/run/screen/S-{user.name}")
    for path in (tmux, screen):
        if not path.exists():
            user.mkdir(path)
            os.chmod(path, 0o700)
    other = user.mkdir(home / "other")
    user.write(other / ".envrc", "export OTHER=1\n")
    assert user.run(["direnv", "allow", str(other)], cwd=other, env={"HOME": str(home)}).returncode == 0
    staging = user.mkdir(Path(f"/tmp/pt-stage-{tag}"))
    plant = user.write(home / "plant.py", PLANT)
    try:
        term = term_factory("bash", env={"XDG_RUNTIME_DIR": str(runtime)})
        supervised(term)
        term.run("cd proj")
        term.prompt()
        own = _dirs(term.run(SHOW))[0]
        assert Path(own).parent == runtime / "peninsula-sockets", own
        term.run("cd ..")
        term.prompt()
        targets = [(staging, tmux / f"pt-{tag}"), (runtime, gnupg / "S.gpg-agent"), (staging, Path(own) / f"pt-{tag}")]
        # Positive control: unconfined, at the prompt outside, every route works.
        for stage, target in targets:
            text = term.run(f"python3 {plant} {stage} {target}")
            assert all(f"{route} {target} ok" in text for route in ROUTES), text
        term.run("cd other")
        term.prompt()
        for stage, target in targets:  # project B: the user's places and project A's directory
            text = term.run(f"python3 {plant} {stage} {target}")
            assert all(f"{route} {target} EACCES" in text for route in ROUTES), text
            assert f"denied bind of {target}" in text, text
            assert not os.path.lexists(target)
        # screen's directory is outside the session's Landlock baseline: the kernel refuses, confined or not.
        text = term.run(f"python3 {plant} {staging} {screen}/pt-{tag}")
        assert all(f"{route} {screen}/pt-{tag} EACCES" in text for route in ROUTES), text
    finally:
        shutil.rmtree(staging, ignore_errors=True)
