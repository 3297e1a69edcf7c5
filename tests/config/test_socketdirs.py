"""Per-project tmux and screen directories (config/socketdirs.py): named to
a tool only when they are the user's own real 0700 directories; each
project's policy may write its own and no other; the user's own servers'
places are protected in run's and the session's project policies."""

from __future__ import annotations

import os

import pytest

from peninsula.config import defaults, socketdirs
from peninsula.config.project import Project, project_policy, strict_policy
from peninsula.config.user import UserConfig
from peninsula.policy import engine as policy
from peninsula.sandbox.api import Sandbox


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    path = tmp_path / "rt"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return path


def test_the_variables_name_the_projects_own_directory(runtime, tmp_path):
    env = dict(socketdirs.socket_env(str(tmp_path / "a")))
    own = env["TMUX_TMPDIR"]
    assert os.path.dirname(own) == str(runtime / "peninsula-sockets") and env["SCREENDIR"] == own + "/screen"
    assert oct(os.lstat(own).st_mode & 0o777) == "0o700"
    assert dict(socketdirs.socket_env(str(tmp_path / "b")))["TMUX_TMPDIR"] != own
    # tmux's socket there fits sun_path, under a login's runtime dir with the longest uid
    beneath = own[len(str(runtime)):]
    assert len(f"/run/user/4294967294{beneath}/tmux-4294967294/default") < 108


@pytest.mark.parametrize("spoil", ["symlink", "group-writable"])
def test_a_directory_not_safely_ours_is_never_named(runtime, tmp_path, spoil):
    root = str(tmp_path / "a")
    own = socketdirs.project_sockets(root)
    os.makedirs(os.path.dirname(own), mode=0o700)
    if spoil == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        os.symlink(tmp_path / "elsewhere", own)
    else:
        os.mkdir(own, 0o700)
        os.chmod(own, 0o770)
    assert socketdirs.socket_env(root) == ()
    assert socketdirs.make_project_sockets(root) is None


def _writable(pol, path):
    return policy.decide_write(pol, path).allow


def test_each_project_writes_its_own_directory_only(runtime, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    own_a = socketdirs.make_project_sockets(str(a))
    own_b = socketdirs.make_project_sockets(str(b))
    pol_a, _ = project_policy(Project(str(a), ""), UserConfig())
    assert _writable(pol_a, own_a + "/tmux-1000/default")
    assert not _writable(pol_a, own_b + "/tmux-1000/default")
    assert not _writable(pol_a, os.path.dirname(own_a) + "/planted")
    assert _writable(pol_a, str(runtime / "other-file"))  # the rest of the runtime dir as before
    # Strict (a line typed between projects, an orphan never seen) may use none.
    strict = strict_policy(UserConfig())
    assert not _writable(strict, own_a + "/tmux-1000/default")
    assert not _writable(strict, os.path.dirname(own_a) + "/planted")
    assert _writable(strict, "/tmp/pt-strict-control")  # the control: the temp dirs are its roots
    run_a = Sandbox(project=str(a)).policy()
    assert _writable(run_a, own_a + "/x") and not _writable(run_a, own_b + "/x")


def test_the_users_server_places_are_protected_in_run_and_session(runtime, tmp_path):
    (tmp_path / "a").mkdir()
    uid, user = os.getuid(), __import__("pwd").getpwuid(os.getuid()).pw_name
    places = [f"/tmp/tmux-{uid}/default", f"{runtime}/gnupg/S.gpg-agent", f"{runtime}/gnupg/S.keyboxd",
              f"/run/screen/S-{user}/1.pts-0.host", "/tmp/.X11-unix/X1", f"/tmp/emacs{uid}/server",
              f"{runtime}/emacs/server", f"{runtime}/nvim.123.0", f"/tmp/nvim.{user}/x/nvim.1.0"]
    session, _ = project_policy(Project(str(tmp_path / "a"), ""), UserConfig())
    run = Sandbox(project=str(tmp_path / "a"), write=[str(runtime), "/run/screen"]).policy()
    for pol in (session, run):
        for place in places:
            assert not _writable(pol, place), (place, pol)
    assert len(defaults.protected_sockets()) == len(defaults.PROTECTED_SOCKETS)
