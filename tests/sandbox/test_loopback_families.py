"""UDP to this host with an address whose family differs from the
socket's (issue 11, loopback): the kernel reads it by the socket's domain,
so the judgement must too. AF_UNSPEC on an AF_INET socket's sendto is
IPv4 (udp_sendmsg); an AF_INET address on an AF_INET6 socket is IPv4,
for sendto and for connect (then a plain send goes there), unless the
socket is v6-only (the kernel refuses it: ENETUNREACH, EAFNOSUPPORT).

Each route is shown to reach an outside receiver that runs what it gets
unconfined (the positive control), then refused confined with EACCES and
a notice.
"""

from __future__ import annotations

import textwrap
import time

import pytest

from loopback_services import start_service, stop, wait_for

from .helpers import PY

# argv: route, port, command. Prints "sent" or "errno NAME".
ROUTE = textwrap.dedent("""
    import ctypes, errno, socket, struct, sys
    route, port, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode() + b"\\n"
    libc = ctypes.CDLL(None, use_errno=True)
    def sin(family):
        return struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_aton("127.0.0.1") + bytes(8)
    def check(r):
        if r < 0:
            raise OSError(ctypes.get_errno(), "call")
    try:
        s = socket.socket(socket.AF_INET if route == "B" else socket.AF_INET6, socket.SOCK_DGRAM)
        if route.endswith("v6only"):
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if route == "B":  # AF_UNSPEC sendto on an AF_INET socket
            check(libc.sendto(s.fileno(), cmd, len(cmd), 0, sin(socket.AF_UNSPEC), 16))
        elif route.startswith("C"):  # AF_INET sendto on an AF_INET6 socket
            check(libc.sendto(s.fileno(), cmd, len(cmd), 0, sin(socket.AF_INET), 16))
        else:  # D: AF_INET connect on an AF_INET6 socket, then a plain send
            check(libc.connect(s.fileno(), sin(socket.AF_INET), 16))
            s.send(cmd)
        print("sent", flush=True)
    except OSError as err:
        print("errno", errno.errorcode[err.errno], flush=True)
""")


@pytest.mark.parametrize("route", ["B", "C", "D"])
def test_udp_address_of_another_family_is_judged(who, route):
    proj, out = who.mkdir(who.base / "proj"), who.mkdir(who.base / "out")
    udp, port = start_service(who.prefix(), who.env(), str(who.base), PY, "127.0.0.1", "udp")
    try:
        control = who.run([PY, "-c", ROUTE, route, port, f"touch {out}/control"])
        assert control.stdout.split() == [b"sent"], control
        assert wait_for(out / "control"), route
        confined = who.peninsula("run", "--write", proj, "--", PY, "-c", ROUTE, route, port, f"touch {out}/escaped")
        assert confined.stdout.split() == [b"errno", b"EACCES"], (route, confined)
        op = "connect" if route == "D" else "sendto"
        assert f"denied {op} of 127.0.0.1:{port} (udp)" in confined.stderr.decode(), confined
        time.sleep(0.3)
        assert not (out / "escaped").exists()
    finally:
        stop(udp)


@pytest.mark.parametrize("route, kernel", [("C-v6only", "ENETUNREACH"), ("D-v6only", "EAFNOSUPPORT")])
def test_v6only_socket_gets_the_kernels_answer(who, route, kernel):
    """A v6-only socket cannot reach an IPv4 address: confined, the
    kernel's errno, not the judgement's."""
    proj, out = who.mkdir(who.base / "proj"), who.mkdir(who.base / "out")
    udp, port = start_service(who.prefix(), who.env(), str(who.base), PY, "127.0.0.1", "udp")
    try:
        control = who.run([PY, "-c", ROUTE, route, port, f"touch {out}/control"])
        assert control.stdout.split() == [b"errno", kernel.encode()], control
        confined = who.peninsula("run", "--write", proj, "--", PY, "-c", ROUTE, route, port, f"touch {out}/escaped")
        assert confined.stdout.split() == [b"errno", kernel.encode()], confined
        time.sleep(0.3)
        assert not list(out.iterdir())
    finally:
        stop(udp)
