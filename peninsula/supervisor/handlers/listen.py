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

A TCP listener goes back to CLOSE on shutdown(SHUT_RD or SHUT_RDWR) and
connect(AF_UNSPEC), and would then be "not listening already": a TCP
socket seen listening without a record that covers the caller (at
listen(), shutdown() and connect(AF_UNSPEC), all trapped; their call is
made here, after the taint) is tainted, and a tainted socket is never
recorded. A taint is needed only while its socket is not listening (any
way back to CLOSE taints it again), so a full table drops the taints of
sockets listening; past MAX_TAINTED the call is refused (fail closed).
Only sockets of the supervisor's network namespace are tainted: a
confined process cannot make unrecorded listeners there (its own are
recorded while they listen), so only outside listeners (and in a shell
session another confinement's) fill the table.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import stat
import struct

from peninsula.supervisor.handlers import loopback
from peninsula.supervisor.handlers.listened import listened_inside, unix_lookup, unix_sockets
from peninsula.supervisor.handlers.records import MAX_ENTRIES
from peninsula.supervisor.handlers.request import CONTINUE, Denied, signed_int, their_file

SO_COOKIE = 57  # Linux 4.12
MAX_TAINTED = 8 * MAX_ENTRIES  # taints of sockets not listening (or gone: cookies are never given twice)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.listen.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.shutdown.argtypes = (ctypes.c_int, ctypes.c_int)


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
        if listening and sock.family in (socket.AF_INET, socket.AF_INET6):
            _taint(req, fd, cookie(sock), "listen")
        ports = req.sup.tcp_bind_ports
        if ports is not None and 0 not in ports and not listening and _unbound_tcp(sock):
            raise Denied(errno.EACCES, "tcp port 0", "listen() on an unbound socket binds an ephemeral port; "
                         "not in --allow-bind (bind a port first)", "listen")
        if _libc.listen(fd, signed_int(req.args[1])) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "listen")
        if not listening and sock.family in (socket.AF_INET, socket.AF_INET6):
            key = cookie(sock)
            if key not in req.sup.listen_tainted:
                _record(req.sup, key, req.sup.confinement_of(req.tgid))
    return 0


def h_shutdown(req):
    """shutdown(), made here on the duplicate after taint_listening and
    answered with its result: the kernel's errnos, and no CONTINUE (the fd
    number could be swapped)."""
    number = signed_int(req.args[0])
    if number < 0:
        raise OSError(errno.EBADF, "bad fd")
    fd = their_file(req, number)
    # An O_PATH fd is no socket to shutdown() (EBADF, from the call below).
    if stat.S_ISSOCK(os.fstat(fd).st_mode) and not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_PATH:
        taint_listening(req, fd, "shutdown")
    if _libc.shutdown(fd, signed_int(req.args[1])) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "shutdown")
    return 0


def taint_listening(req, fd: int, op: str) -> None:
    """Before a call that may take the socket fd (a duplicate of the
    target's) back to CLOSE, made by the caller of this in the same thread."""
    with socket.socket(fileno=os.dup(fd)) as sock:
        if (sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
            _taint(req, fd, cookie(sock), op)


def _taint(req, fd: int, key: int, op: str) -> None:
    sup = req.sup
    # A socket of another network namespace is never judged by its record
    # (loopback.py finds listeners with sock_diag, which sees ours only).
    if listened_inside(sup, req.tgid, key) or not loopback.same_netns(fd):
        return
    # A record of a confinement that does not cover the caller: the socket
    # is no longer that confinement's alone.
    sup.listened.pop(key, None)
    tainted = sup.listen_tainted
    if key in tainted:
        return
    tainted.put(key, None, _not_listening)
    if len(tainted) > MAX_TAINTED:
        del tainted[key]
        raise Denied(errno.EACCES, "tcp listener", f"more than {MAX_TAINTED} outside TCP listeners taken back "
                     "to CLOSE", op)


def _not_listening():
    live = _live_cookies()
    return lambda key, _: key not in live


def _record(sup, key: int, confinement) -> None:
    def listening():
        live = _live_cookies()
        return lambda k, _: k in live

    sup.listened.put(key, confinement, listening)


def _live_cookies() -> set[int]:
    return {entry[5] for family in (socket.AF_INET, socket.AF_INET6)
            for entry in loopback.listeners(family)}


def _unix_live():
    live = unix_sockets()
    return lambda _, entry: (entry[0], entry[1]) in live


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
        sup.unix_listened.put(found[1], (ino, key, sup.confinement_of(tgid)), _unix_live)
    except OSError:
        return
