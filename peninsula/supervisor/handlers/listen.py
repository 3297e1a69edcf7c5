"""listen() of confined processes: which listening sockets are the
confinement's own.

The loopback judgement (loopback.py) finds the holders of a listening TCP
socket by reading fd tables, and the supervisor cannot read those of
processes outside its own Landlock domain: an outside server's listening
fd that leaked into the sandbox (socket activation, a missing CLOEXEC)
was seen held only inside. So a TCP listener counts as the confinement's
only if a confined process made it listen: this handler records the
socket's SO_COOKIE (the kernel never gives one twice while it runs) with
the confinement of the process that listened, and the judgement requires
that record as well as the holders it sees. Only a socket that was not
listening already is recorded: listening again on an outside server's
socket must not make it the confinement's.

The listen is made here, on a duplicate of the target's socket (the same
open file, so the target's socket listens), and answered with its result:
after a CONTINUE the kernel would look the fd number up again, and another
thread could have put another socket there.

--allow-bind: listen() on an unbound TCP socket binds it to an ephemeral
port, past Landlock's rule, which judges bind() alone. When binds are
restricted and port 0 is not allowed, such a listen gets EACCES, what
Landlock (and bind.py) answer a bind to port 0.

A unix socket is left to the kernel (CONTINUE): listen() makes its caller
the socket's peer (SO_PEERCRED, SO_PEERPIDFD), which the unix judgement
(sockets.py) and the socket's clients read, and made here it would name
the supervisor. That judgement names whoever called listen() last, so a
confined process that listens again on an outside server's leaked unix
listener would make it look inside: the same record is kept, of the
socket the request named, when it is not listening yet (its bound name,
the file's device and inode or the abstract name, found with unix
sock_diag), and a connect needs the listener bound there to be that
recorded socket, still listening. A CONTINUE may listen on another socket
put at the fd number meanwhile: that one is not recorded (refused to
clients), and the one recorded must still be found listening.
sock_diag sees the supervisor's network namespace only: a socket in
another (a run's own --unshare-net) is not recorded, and there the
judgement is the listener's process alone.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat
import struct

from peninsula.supervisor.handlers import loopback
from peninsula.supervisor.handlers.listened import unix_lookup
from peninsula.supervisor.handlers.request import CONTINUE, Denied, signed_int, their_file

SO_COOKIE = 57  # Linux 4.12
MAX_RECORDS = 8192  # then the records of sockets no longer listening are dropped

_libc = ctypes.CDLL(None, use_errno=True)
_libc.listen.argtypes = (ctypes.c_int, ctypes.c_int)


def cookie(sock: socket.socket) -> int:
    return struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]


def _unbound_tcp(sock: socket.socket) -> bool:
    """A TCP socket with no port yet (neither bound nor connected): listen()
    would pick one."""
    return (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
            and sock.getsockname()[1] == 0)


def h_listen(req):
    number = signed_int(req.args[0])
    if number < 0:
        raise OSError(errno.EBADF, "bad fd")
    fd = their_file(req, number)
    if not stat.S_ISSOCK(os.fstat(fd).st_mode):
        raise OSError(errno.ENOTSOCK, "not a socket")
    with socket.socket(fileno=os.dup(fd)) as sock:
        if sock.family == socket.AF_UNIX:
            if (sock.type in (socket.SOCK_STREAM, socket.SOCK_SEQPACKET)
                    and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                _record_unix(req.sup, fd, sock, req.tgid)
            return CONTINUE
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        ports = req.sup.tcp_bind_ports
        if ports is not None and 0 not in ports and not listening and _unbound_tcp(sock):
            raise Denied(errno.EACCES, "tcp port 0", "listen() on an unbound socket binds an ephemeral port; "
                         "not in --allow-bind (bind a port first)", "listen")
        if _libc.listen(fd, signed_int(req.args[1])) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "listen")
        if not listening and sock.family in (socket.AF_INET, socket.AF_INET6):
            _record(req.sup, cookie(sock), req.sup.confinement_of(req.tgid))
    return 0


def _record(sup, key: int, confinement) -> None:
    if len(sup.listened) >= MAX_RECORDS:
        live = _live_cookies()
        for stale in [k for k in sup.listened if k not in live]:
            del sup.listened[stale]
    sup.listened[key] = confinement


def _live_cookies() -> set[int]:
    return {entry[5] for family in (socket.AF_INET, socket.AF_INET6)
            for entry in loopback.listeners(family)}


def _record_unix(sup, fd: int, sock: socket.socket, tgid: int) -> None:
    """Not recorded when sock_diag cannot say (the socket's clients are
    then refused): the listen itself is the kernel's."""
    if not loopback.same_netns(fd):
        return
    ino, key = os.fstat(fd).st_ino, cookie(sock)
    try:
        found = unix_lookup(ino, key)
        if found is None or found[1] is None:
            return  # unbound: the kernel refuses the listen (EINVAL)
        if len(sup.unix_listened) >= MAX_RECORDS:
            for where in [w for w, (i, k, _) in sup.unix_listened.items() if unix_lookup(i, k) is None]:
                del sup.unix_listened[where]
    except OSError:
        return
    sup.unix_listened[found[1]] = (ino, key, sup.confinement_of(tgid))
