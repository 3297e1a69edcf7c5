"""loopback.used_family against the real kernel: for UDP on each domain,
each address family and IPV6_V6ONLY, the family judged is IPv4 exactly
when the kernel delivers the datagram to an IPv4 receiver."""

from __future__ import annotations

import ctypes
import errno
import socket
import struct
from types import SimpleNamespace

import pytest

from peninsula.supervisor.handlers import loopback

libc = ctypes.CDLL(None, use_errno=True)


def _sin(family: int, port: int) -> bytes:
    return struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_aton("127.0.0.1") + b"\0" * 8


@pytest.mark.parametrize("domain", [socket.AF_INET, socket.AF_INET6])
@pytest.mark.parametrize("family", [socket.AF_UNSPEC, socket.AF_INET])
@pytest.mark.parametrize("v6only", [False, True])
@pytest.mark.parametrize("op", ["sendto", "connect"])
def test_judged_family_is_the_one_the_kernel_delivers_to(domain, family, v6only, op):
    if v6only and domain != socket.AF_INET6:
        pytest.skip("IPV6_V6ONLY is an AF_INET6 option")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, socket.socket(domain, socket.SOCK_DGRAM) as s:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        if v6only:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        addr = _sin(family, receiver.getsockname()[1])
        if op == "sendto":
            libc.sendto(s.fileno(), b"x", 1, 0, addr, len(addr))
        elif libc.connect(s.fileno(), addr, len(addr)) == 0:
            libc.send(s.fileno(), b"x", 1, 0)
        try:
            arrived = receiver.recv(4) == b"x"
        except BlockingIOError:
            arrived = False
        sock = SimpleNamespace(fd=s.fileno(), domain=domain, family=family, addr=addr)
        assert (loopback.used_family(sock, op, socket.IPPROTO_UDP) == socket.AF_INET) == arrived


def test_tcp_on_af_inet6_refuses_an_af_inet_address():
    """tcp_v6_connect answers EINVAL/EAFNOSUPPORT: nothing to judge."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        addr = _sin(socket.AF_INET, 9)
        assert libc.connect(s.fileno(), addr, len(addr)) == -1 and ctypes.get_errno() in (errno.EINVAL, errno.EAFNOSUPPORT)
        sock = SimpleNamespace(fd=s.fileno(), domain=socket.AF_INET6, family=socket.AF_INET, addr=addr)
        assert loopback.used_family(sock, "connect", socket.IPPROTO_TCP) is None
