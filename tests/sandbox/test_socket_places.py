"""The places where the user's own servers listen cannot be planted by a
confined process (`peninsula run`): tmux's /tmp/tmux-UID, gpg-agent's
$XDG_RUNTIME_DIR/gnupg, screen's /run/screen/S-USER. A socket bound there,
made by mknod, renamed there or a symlink put there would be the server
the user's next unconfined `tmux`, `gpg` or `screen -r` talks to. Each
route is tried unconfined first (it works: the attack is real), then
confined, with the parent directory writable (--write), so that only the
protection stands in the way.

And a project's own tmux and screen directory (config/socketdirs.py):
tmux and screen work there, and another project cannot write it.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

import pytest
from socket_plant import PLANT, ROUTES, results as _results

from .helpers import PY


@pytest.fixture
def places(who):
    """(runtime dir, [(staging dir, target)]): the targets in the user's own
    tmux, gpg-agent and screen directories, made as the tools make them if
    missing (and left: a server of that user may have come to use them)."""
    tag = uuid.uuid4().hex[:8]
    runtime = who.mkdir(who.base / "rt")
    os.chmod(runtime, 0o700)

    def own_dir(path: Path, mode: int) -> Path:
        if not path.exists():
            who.mkdir(path)
            os.chmod(path, mode)
        return path

    tmux = own_dir(Path(f"/tmp/tmux-{who.uid}"), 0o700)
    gnupg = own_dir(runtime / "gnupg", 0o700)
    screen = own_dir(Path(f"/run/screen/S-{who.name}"), 0o700)
    staging_tmp = who.mkdir(Path(f"/tmp/pt-stage-{tag}"))
    staging_run = who.mkdir(Path(f"/run/screen/pt-stage-{tag}"))
    targets = [(staging_tmp, tmux / f"pt-{tag}"), (runtime, gnupg / "S.gpg-agent"),
               (staging_run, screen / f"pt-{tag}")]
    yield runtime, targets
    for path in (staging_tmp, staging_run):
        shutil.rmtree(path, ignore_errors=True)


def test_the_users_server_places_cannot_be_planted(who, places):
    runtime, targets = places
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    for staging, target in targets:
        # Positive control: each route works unconfined.
        control = who.run([PY, "-c", PLANT, staging, target], env=env)
        assert all(result == "ok" for result in _results(control).values()) and len(_results(control)) == 4, control
        # The parents writable (/tmp is), so that the protection alone refuses.
        confined = who.peninsula("run", "--write", runtime, "--write", "/run/screen", "--", PY, "-c", PLANT, staging,
                                 target, env=env, cwd=who.base)
        assert _results(confined) == {(route, str(target)): "EACCES" for route in ROUTES}, confined
        err = confined.stderr.decode()
        assert f"denied bind of {target}" in err and f"protected by {target.parent}" in err, err
        assert not os.path.lexists(target)


def test_tmux_default_cannot_be_planted_before_the_server_starts(who, places):
    default = Path(f"/tmp/tmux-{who.uid}/default")
    if os.path.lexists(default):
        pytest.skip(f"{default} is there: a tmux server of {who.name} runs")
    staging = places[1][0][0]
    confined = who.peninsula("run", "--", PY, "-c", PLANT, staging, default, cwd=who.base)
    assert _results(confined) == {(route, str(default)): "EACCES" for route in ROUTES}, confined
    assert not os.path.lexists(default)


SHOW = "echo tmux=$TMUX_TMPDIR screen=$SCREENDIR"


def test_tmux_and_screen_get_the_projects_own_directory(who, places):
    a = who.mkdir(who.base / "a")
    b = who.mkdir(who.base / "b")
    staging = places[1][0][0]  # in /tmp, where the directories are without a runtime dir
    show = who.peninsula("run", "--", "sh", "-c", SHOW, cwd=a)
    fields = dict(word.split("=", 1) for word in show.stdout.decode().split())
    own = Path(fields["tmux"])
    assert fields["screen"] == str(own / "screen"), fields
    assert stat.S_IMODE(os.lstat(own).st_mode) == 0o700 and os.lstat(own).st_uid == who.uid
    assert len(str(own / f"tmux-{who.uid}" / "default")) < 108
    # `screen -dm` returns at its fork, before its server listens: wait for it.
    work = ("tmux -f /dev/null new-session -d 'sleep 30' && tmux ls && tmux kill-server"
            " && screen -dmS ptscreen sleep 5 && for i in $(seq 50); do screen -ls ptscreen | grep -q Detached && break;"
            " sleep 0.1; done; screen -ls ptscreen; screen -S ptscreen -X quit")
    proc = who.peninsula("run", "--", "sh", "-c", work, cwd=a, timeout=60)
    out = proc.stdout.decode()
    assert "1 windows" in out and "ptscreen" in out and str(own / "screen") in out, (out, proc.stderr)
    assert b"denied" not in proc.stderr, proc.stderr
    other = who.peninsula("run", "--", "sh", "-c", SHOW, cwd=b).stdout.decode()
    assert str(own) not in other and "tmux=/" in other, other
    # Project B cannot plant in A's directory; unconfined, the same works.
    target = own / "pt-planted"
    control = who.run([PY, "-c", PLANT, staging, target])
    assert set(_results(control).values()) == {"ok"}, control
    confined = who.peninsula("run", "--", PY, "-c", PLANT, staging, target, cwd=b)
    assert _results(confined) == {(route, str(target)): "EACCES" for route in ROUTES}, confined
