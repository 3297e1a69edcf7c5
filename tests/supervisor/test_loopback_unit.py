"""loopback.py's facts, from the real kernel: which destinations are this
host, what sock_diag says is at the other end of a connection, and the
allow_loopback settings."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from peninsula.supervisor.handlers import allowlist, loopback
from peninsula.config.options import ConfigError
from peninsula.config.user import parse_user_config


def _v4(host: str, port: int) -> bytes:
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(host) + b"\0" * 8


def _v6(host: str, port: int) -> bytes:
    return struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, 0) + socket.inet_pton(socket.AF_INET6, host) + b"\0" * 4


@pytest.mark.parametrize("addr, local", [
    (_v4("127.0.0.1", 80), True), (_v4("127.9.9.9", 80), True), (_v4("0.0.0.0", 80), True),
    (_v6("::1", 80), True), (_v6("::", 80), True), (_v6("::ffff:127.0.0.1", 80), True),
    (_v6("::ffff:0.0.0.0", 80), True),
    (_v4("192.0.2.123", 80), False), (_v6("2001:db8::1", 80), False),  # documentation ranges: never this host
])
def test_which_destinations_are_this_host(addr, local):
    ip, port, scope = loopback.destination(struct.unpack_from("=H", addr)[0], addr)
    assert port == 80
    assert loopback.is_local(ip, scope) is local


def test_the_host_s_own_address_is_this_host():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.123", 9))  # no packet: only a route lookup
        mine = probe.getsockname()[0]
    except OSError:
        pytest.skip("no route off this host")
    finally:
        probe.close()
    if mine.startswith("127."):
        pytest.skip("no address but loopback")
    assert loopback.is_local(socket.inet_aton(mine), 0)


def test_short_addresses_are_left_to_the_kernel():
    assert loopback.destination(socket.AF_INET, b"\2\0\0\x50") is None
    assert loopback.destination(socket.AF_INET6, _v6("::1", 80)[:20]) is None


def test_sock_diag_finds_the_listener_and_the_other_end():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    listeners = loopback.bound(socket.IPPROTO_TCP, 1 << loopback.TCP_LISTEN, socket.inet_aton("127.0.0.1"), port)
    assert [entry[4] for entry in listeners] == [os.fstat(srv.fileno()).st_ino]
    client = socket.create_connection(("127.0.0.1", port))
    local = loopback._addr(client.getsockname())
    peer = loopback._addr(client.getpeername())
    end = loopback.other_end(local, peer)
    assert end is not None and end[4] == 0 and end[0] in loopback.QUEUED  # not accepted yet
    conn, _ = srv.accept()
    end = loopback.other_end(local, peer)
    assert end[4] == os.fstat(conn.fileno()).st_ino
    assert loopback.holders({end[4]})[end[4]] == set()  # this process is the supervisor's own: left out
    conn.close()
    end = loopback.other_end(local, peer)
    assert end is None or (end[4] == 0 and end[0] not in loopback.QUEUED)  # orphaned by its process
    client.close()
    srv.close()


def test_allow_loopback_in_the_user_config():
    assert parse_user_config("allow_loopback = [8888, 9229]\n", "/c.toml").allow_loopback == (8888, 9229)
    for bad in ('allow_loopback = ["x"]\n', "allow_loopback = 8888\n", "allow_loopback = [70000]\n"):
        with pytest.raises(ConfigError, match=r"/c.toml:1: 'allow_loopback'"):
            parse_user_config(bad, "/c.toml")


def test_shipped_ports_and_the_user_s():
    ports = allowlist.shipped_ports((8888,), "--allow-loopback")
    assert 53 in ports and ports[8888] == "allowed by --allow-loopback 8888"
