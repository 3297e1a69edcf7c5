"""The head's side of a nest request to an outer `peninsula run`
(supervisor/run_nesting.py says why each step is there)."""

from __future__ import annotations

import ctypes
import json
import os
import select
import socket
import stat
import struct

from peninsula.supervisor.run_nesting import ENV_NEST_FD

REPLY_TIMEOUT = 10.0  # seconds; the outer supervisor answers between two trapped calls

_libc = ctypes.CDLL(None, use_errno=True)


def run_for_nesting() -> int | None:
    """The outer run's nest socket when this process runs under its filter
    (so a run of its own would get EBUSY), else None. The variable alone
    proves little: the socket's peer must be the process that made it,
    an ancestor of ours under fewer seccomp filters (the run's supervisor,
    whose filter is ours' last), unless a pid namespace hides it (pid 0)."""
    from peninsula.kernel import target

    try:
        fd = int(os.environ.get(ENV_NEST_FD, ""))
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        with socket.socket(fileno=os.dup(fd)) as sock:
            peer = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
        mine = target.seccomp_filters("self")
        if not mine:
            return None
        theirs = target.seccomp_filters(peer) if peer != 0 else None
        if peer != 0 and not (theirs is not None and theirs < mine and target.descends_from(os.getpid(), peer)):
            return None
        return fd
    except (OSError, ValueError, IndexError):
        return None


class RunChannel:
    """Nest requests to the outer run's supervisor, over the inherited socket."""

    whose = "the outer run's"
    where = "this peninsula run"
    outside = "the outer run"

    def __init__(self, fd: int):
        self.fd = fd
        self.env = {ENV_NEST_FD: str(fd)}  # the nested command may nest again

    def ask(self, request: dict, fds: list[int]) -> dict | None:
        # The reply comes back on a socketpair of our own: the outer
        # supervisor takes its creator (us) as the requester.
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with mine:
            try:
                with theirs, socket.socket(fileno=os.dup(self.fd)) as channel:
                    channel.sendmsg([json.dumps(request).encode()],
                                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(_ints([theirs.fileno(), *fds])))])
                _poke()
                if not select.select([mine], [], [], REPLY_TIMEOUT)[0]:
                    return None
                data = mine.recv(1 << 16)
            except OSError:
                return None
        try:
            return json.loads(data) if data else None
        except ValueError:
            return None

    def check(self, path: str) -> dict | None:
        return self.ask({"op": "check", "path": path}, [])


def _ints(values: list[int]):
    import array

    return array.array("i", values)


class _SockaddrUnspec(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_char * 14)]


def _poke() -> None:
    """One trapped call that only Python answers (connect is judged in
    Python; to AF_UNSPEC an unbound datagram socket just stays
    unconnected), so the outer supervisor reads its channel now even
    while its compiled hot path waits for requests in C."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        addr = _SockaddrUnspec(0)
        _libc.connect(sock.fileno(), ctypes.byref(addr), ctypes.sizeof(addr))
