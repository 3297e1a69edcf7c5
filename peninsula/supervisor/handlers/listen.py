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

import contextlib
import ctypes
import errno
import os
import socket
import stat
import struct

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
    from peninsula.supervisor.handlers import loopback

    return {entry[5] for family in (socket.AF_INET, socket.AF_INET6)
            for entry in loopback.listeners(family)}


_MISSING = object()


def listened_inside(sup, caller_tgid: int, key: int, lock=None) -> bool:
    """A confined process of caller_tgid's confinement (or a stricter one)
    made the socket of cookie key listen."""
    confinement = sup.listened.get(key, _MISSING)
    if confinement is _MISSING:
        return False
    with lock if lock is not None else contextlib.nullcontext():
        return sup.confinement_covers(caller_tgid, confinement)


# -- unix sockets ------------------------------------------------------------------------

NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
NLM_F_REQUEST, NLMSG_ERROR = 0x1, 2
UDIAG_SHOW_NAME, UDIAG_SHOW_VFS = 0x1, 0x2
UNIX_DIAG_NAME, UNIX_DIAG_VFS = 0, 1
TCP_LISTEN = 10
_UNIX_REQ = struct.Struct("=BBHIIIII")  # unix_diag_req
_UNIX_MSG = struct.Struct("=BBBBIII")  # unix_diag_msg


def unix_lookup(ino: int, key: int) -> tuple[int, tuple | None] | None:
    """(state, where it is bound) of the unix socket of inode ino and cookie
    key in the supervisor's network namespace, None when there is none.
    where: ("vfs", st_dev, st_ino) of a pathname socket's file, ("name",
    bytes) of an abstract one, None for an unbound one."""
    body = _UNIX_REQ.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, ino, UDIAG_SHOW_NAME | UDIAG_SHOW_VFS,
                          key & 0xFFFFFFFF, key >> 32)
    msg = struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG) as nl:
        nl.send(msg)
        data = nl.recv(1 << 16)
    length, kind = struct.unpack_from("=IH", data)
    if kind == NLMSG_ERROR:
        code = -struct.unpack_from("=i", data, 16)[0]
        if code in (errno.ENOENT, errno.ESTALE):
            return None
        raise OSError(code, "unix sock_diag")
    state = _UNIX_MSG.unpack_from(data, 16)[2]
    name = vfs = None
    at = 16 + _UNIX_MSG.size
    while at + 4 <= length:
        size, attr = struct.unpack_from("=HH", data, at)
        if size < 4:
            break
        payload = data[at + 4:at + size]
        if attr == UNIX_DIAG_VFS:
            ino_vfs, dev = struct.unpack_from("=II", payload)
            vfs = ("vfs", os.makedev(dev >> 20, dev & 0xFFFFF), ino_vfs)  # the kernel's dev_t: 12 major, 20 minor bits
        elif attr == UNIX_DIAG_NAME:
            name = ("name", bytes(payload))
        at += (size + 3) & ~3
    return state, vfs or name


_SB_DEVS: dict[int, int] = {}  # mount id -> its superblock's device, from mountinfo


def file_key(fd: int) -> tuple:
    """A socket file's identity as unix sock_diag gives it (its superblock's
    device and its inode number), not stat's: btrfs and overlayfs report
    other numbers to stat."""
    with open(f"/proc/self/fdinfo/{fd}", "rb") as handle:
        fields = dict(line.split(b":", 1) for line in handle.read().splitlines() if b":" in line)
    mount, ino = int(fields[b"mnt_id"]), int(fields[b"ino"])
    if mount not in _SB_DEVS:
        _SB_DEVS.clear()
        with open("/proc/self/mountinfo", "rb") as handle:
            for line in handle:
                parts = line.split()
                major, minor = parts[2].split(b":")
                _SB_DEVS[int(parts[0])] = os.makedev(int(major), int(minor))
    return ("vfs", _SB_DEVS.get(mount), ino & 0xFFFFFFFF)  # sock_diag's inode field has 32 bits


def _record_unix(sup, fd: int, sock: socket.socket, tgid: int) -> None:
    """Not recorded when sock_diag cannot say (the socket's clients are
    then refused): the listen itself is the kernel's."""
    from peninsula.supervisor.handlers.loopback import same_netns

    if not same_netns(fd):
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


def unix_listened_inside(sup, caller_tgid: int, where: tuple, lock=None) -> bool:
    """The unix socket listening at where (as unix_lookup names it) was made
    to listen by a process of caller_tgid's confinement (or a stricter
    one). Where nothing was recorded in a run's own network namespace,
    whose sockets sock_diag cannot see, the listener's process decides
    alone (the caller's check)."""
    entry = sup.unix_listened.get(where)
    if entry is None:
        return bool(getattr(sup, "own_netns", False))
    ino, key, confinement = entry
    try:
        found = unix_lookup(ino, key)
    except OSError:
        return False
    if found is None or found != (TCP_LISTEN, where):
        return False
    with lock if lock is not None else contextlib.nullcontext():
        return sup.confinement_covers(caller_tgid, confinement)
