"""--allow-connect / --allow-bind: Landlock ABI 4 TCP port rules. With
neither, the network is untouched; with either, every other TCP connect
and bind is refused with EACCES."""

from __future__ import annotations

import errno
import socket
import textwrap

import pytest

from .helpers import PY

PROBE = textwrap.dedent("""
    import socket, sys
    for action, port in zip(sys.argv[1::2], sys.argv[2::2]):
        s = socket.socket()
        try:
            if action == "connect":
                s.connect(("127.0.0.1", int(port)))
            elif action == "bind":
                s.bind(("127.0.0.1", int(port)))
            elif action == "udp":
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                u.sendto(b"x", ("127.0.0.1", int(port)))
            print(action, port, "ok")
        except OSError as err:
            print(action, port, "errno", err.errno)
        finally:
            s.close()
""")


def _listeners(n):
    out = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        out.append(s)
    return out


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _results(proc):
    assert proc.returncode == 0, proc.stderr
    return {tuple(line.split()[:2]): " ".join(line.split()[2:]) for line in proc.stdout.decode().splitlines()}


@pytest.fixture
def two_listeners():
    socks = _listeners(2)
    yield [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()


def test_untouched_without_rules(who, two_listeners):
    project = who.mkdir(who.base / "p")
    a, b = two_listeners
    (free,) = _free_ports(1)
    # (--allow-loopback: the listeners are outside the sandbox, see test_loopback.py)
    res = _results(who.peninsula("run", "--allow-loopback", a, "--allow-loopback", b, "--", PY, "-c", PROBE,
                                 "connect", a, "connect", b, "bind", free, cwd=project))
    assert res == {("connect", str(a)): "ok", ("connect", str(b)): "ok", ("bind", str(free)): "ok"}


def test_allow_connect_allows_that_port_only(who, two_listeners):
    project = who.mkdir(who.base / "p")
    a, b = two_listeners
    (free,) = _free_ports(1)
    proc = who.peninsula("run", "--allow-connect", str(a), "--allow-loopback", a, "--allow-loopback", b, "--", PY, "-c", PROBE,
                         "connect", a, "connect", b, "bind", free, cwd=project)
    res = _results(proc)
    assert res[("connect", str(a))] == "ok"
    assert res[("connect", str(b))] == f"errno {errno.EACCES}"
    assert res[("bind", str(free))] == f"errno {errno.EACCES}"  # binds are handled too


def test_allow_bind_allows_that_port_only(who):
    project = who.mkdir(who.base / "p")
    good, bad = _free_ports(2)
    proc = who.peninsula("run", "--allow-bind", str(good), "--", PY, "-c", PROBE, "bind", good, "bind", bad, cwd=project)
    res = _results(proc)
    assert res[("bind", str(good))] == "ok"
    assert res[("bind", str(bad))] == f"errno {errno.EACCES}"


def test_repeatable_and_combined_with_unshare_net(who):
    project = who.mkdir(who.base / "p")
    one, two, three = _free_ports(3)
    # Inside a fresh network namespace: serve on `one`, connect to it; `two` may be bound, `three` not.
    code = PROBE.replace("import socket, sys", "import socket, sys\nsrv = socket.socket(); srv.bind(('127.0.0.1', int(sys.argv[2]))); srv.listen()")
    proc = who.peninsula("run", "--unshare-net", "--allow-bind", str(one), "--allow-bind", str(two),
                         "--allow-connect", str(one), "--", PY, "-c", code,
                         "connect", one, "bind", two, "bind", three, "connect", three, cwd=project)
    res = _results(proc)
    assert res[("connect", str(one))] == "ok"
    assert res[("bind", str(two))] == "ok"
    assert res[("bind", str(three))] == f"errno {errno.EACCES}"
    assert res[("connect", str(three))] == f"errno {errno.EACCES}"


def test_udp_is_not_covered(who):
    """Said plainly in docs/run.md: Landlock's network rules are TCP only."""
    project = who.mkdir(who.base / "p")
    (port,) = _free_ports(1)
    proc = who.peninsula("run", "--allow-connect", "1", "--", PY, "-c", PROBE, "udp", port, cwd=project)
    assert _results(proc)[("udp", str(port))] == "ok"


def test_bad_ports_are_refused(who):
    project = who.mkdir(who.base / "p")
    for value in ("http", "70000", "-1"):
        proc = who.peninsula("run", "--allow-connect", value, "--", "true", cwd=project)
        assert proc.returncode == 125 and b"--allow-connect" in proc.stderr, proc.stderr
