"""The pure socket decisions (policy.decide_connect, socket_service) and the
shipped allow-list's sources (allowlist.shipped_allowlist, AllowList)."""

import os
import socket

from peninsula.policy import engine as policy
from peninsula.supervisor.handlers import allowlist


def test_allow_list_wins_and_datagrams_need_it():
    assert policy.decide_connect(allowed="ssh-agent", datagram=True, listener=None, inside=False).allow
    assert not policy.decide_connect(allowed=None, datagram=True, listener="x (pid 1)", inside=True).allow


def test_listener_inside_or_refused():
    assert policy.decide_connect(allowed=None, datagram=False, listener="x (pid 2)", inside=True).allow
    refused = policy.decide_connect(allowed=None, datagram=False, listener="tmux (pid 3)", inside=False)
    assert not refused.allow and "tmux (pid 3)" in refused.reason
    # A listener the kernel could not name is never inside.
    assert not policy.decide_connect(allowed=None, datagram=False, listener=None, inside=True).allow


def test_known_services_are_named():
    assert policy.socket_service("/tmp/tmux-1000/default") == "tmux server"
    assert policy.socket_service("/run/user/1000/bus") == "D-Bus session bus"
    assert policy.socket_service("/tmp/.X11-unix/X0").startswith("X11 display")
    assert policy.socket_service("/run/user/1000/wayland-0") == "Wayland display"
    assert policy.socket_service("/home/u/proj/app.sock") is None


def test_allowlist_from_the_environment_only(tmp_path):
    env = {"SSH_AUTH_SOCK": str(tmp_path / "agent"), "HOME": str(tmp_path)}
    entries = allowlist.shipped_allowlist(env)
    assert ("ssh-agent", str(tmp_path / "agent")) in [(s, p) for s, p, _ in entries]
    assert all(reason for _, _, reason in entries)
    assert not [p for _, p, _ in allowlist.shipped_allowlist({}) if p == str(tmp_path / "agent")]


def test_allowlist_keeps_the_inode_found_at_start(tmp_path):
    path = tmp_path / "agent"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    allowed = allowlist.AllowList([("ssh-agent", str(path), "signs")])
    first = os.stat(path)
    assert (first.st_dev, first.st_ino) in allowed.inodes
    # Another socket put under the allowed name later is not allowed.
    os.unlink(path)
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(path))
    second = os.stat(path)
    assert (second.st_dev, second.st_ino) not in allowed.inodes
    # A name that is no socket, or is missing, allows nothing.
    (tmp_path / "plain").write_text("x")
    assert not allowlist.AllowList([("x", str(tmp_path / "plain"), "r"), ("y", str(tmp_path / "none"), "r")]).inodes
    listener.close()
    other.close()
