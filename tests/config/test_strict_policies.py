"""The shell session's strict policy (config/project.py strict_policy), for a
line typed between projects (`cd ~/p2; tool` in p1, before the next prompt)
and an orphan whose line was never seen (its parent died by a signal: a
daemon whose parent exits is judged by its line, shell/judge.py): refused
every socket place a project is refused, it writes the temp dirs and the
runtime dir alone."""

from __future__ import annotations

import os

import pytest

from peninsula.config import defaults, socketdirs
from peninsula.config.project import Project, project_policy, strict_policy
from peninsula.config.user import UserConfig
from peninsula.policy import engine as policy


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    path = tmp_path / "rt"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/ssh-PtStrict/agent.123")
    return path


def _writable(pol, path):
    return policy.decide_write(pol, path).allow


def _server_places(runtime, project_root):
    # (screen's /run/screen/S-USER is not beneath a strict policy's roots.)
    uid = os.getuid()
    return [f"/tmp/tmux-{uid}/default", f"{runtime}/gnupg/S.gpg-agent", "/tmp/.X11-unix/X1", f"/tmp/emacs{uid}/server", f"{runtime}/nvim.123.0",
            "/tmp/ssh-PtStrict/agent.123", "/tmp/ssh-PtStrict/agent.999",
            socketdirs.make_project_sockets(project_root) + f"/tmux-{uid}/default"]


def test_strict_is_refused_every_socket_place_a_project_is(runtime, tmp_path):
    """Strict (between projects, and an orphan never seen: its parent died
    by a signal) is refused every place a project is. The control: each
    place is writable to a policy of the same roots without protections."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    in_b, _ = project_policy(Project(str(b), ""), UserConfig())
    strict = strict_policy(UserConfig())
    bare = policy.Policy(writable=strict.writable + in_b.writable, protected=())
    for place in _server_places(runtime, str(a)):
        assert not _writable(in_b, place), place
        assert not _writable(strict, place), place
        assert _writable(bare, place), place


def test_strict_writes_the_temp_dirs_and_no_more(runtime, tmp_path):
    home = tmp_path / "home"
    (home / ".gnupg").mkdir(parents=True)
    strict = strict_policy(UserConfig())
    assert strict.writable == tuple(os.path.realpath(p) for p in defaults.temp_roots())
    for path, allow in [("/tmp/build-1/main.o", True), ("/var/tmp/x", True), (f"{runtime}/some-app.sock", True),
                        (f"{runtime}/systemd/user/evil.service", False), (f"{runtime}/bus", False),
                        (f"{home}/.bashrc", False), ("/etc/peninsula-pt", False), ("/usr/local/bin/make", False),
                        (f"{home}/.gnupg/gpg.conf", False), (f"{home}/.gnupg/random_seed", True)]:
        assert _writable(strict, path) is allow, path
