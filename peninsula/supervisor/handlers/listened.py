"""What listen.py recorded, asked by the judgements of connects
(loopback.py for TCP, sockets.py for unix streams): was a listening socket
made to listen by a process of the caller's confinement?

Kept apart from listen.py, which records (and asks loopback.py which
sockets still listen), so that the judgements import no cycle.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import threading


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
_DIAG: list[socket.socket] = []
_DIAG_LOCK = threading.Lock()


def unix_lookup(ino: int, key: int) -> tuple[int, tuple | None] | None:
    """(state, where it is bound) of the unix socket of inode ino and cookie
    key in the supervisor's network namespace, None when there is none.
    where: ("vfs", device, inode) of a pathname socket's file (as
    file_key names a file), ("name", bytes) of an abstract one, None for an
    unbound one."""
    body = _UNIX_REQ.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, ino, UDIAG_SHOW_NAME | UDIAG_SHOW_VFS,
                          key & 0xFFFFFFFF, key >> 32)
    msg = struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0) + body
    with _DIAG_LOCK:  # one socket, kept: making one cost as much as the query (connects may run in threads)
        if not _DIAG:
            _DIAG.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG))
        try:
            _DIAG[0].send(msg)
            data = _DIAG[0].recv(1 << 16)
            length, kind = struct.unpack_from("=IH", data)
            if kind != NLMSG_ERROR and _UNIX_MSG.unpack_from(data, 16)[4:] != (ino, key & 0xFFFFFFFF, key >> 32):
                raise OSError(errno.EIO, "unix sock_diag answered another query")
        except BaseException:
            _DIAG.pop().close()  # an answer may still come: never read it as another query's
            raise
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


NLM_F_DUMP, NLMSG_DONE = 0x300, 3


def diag_messages(body: bytes, flags: int):
    """(buffer, offset of the payload) of each message sock_diag answers the
    request body with (flags: NLM_F_REQUEST, | NLM_F_DUMP): a dump until its
    end, an exact lookup in its one read; its error answer raises OSError
    with the kernel's code (0: an ack)."""
    msg = struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, flags, 1, 0) + body
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG) as nl:
        nl.send(msg)
        while True:
            data = nl.recv(1 << 16)
            at = 0
            while at + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, at)
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    raise OSError(-struct.unpack_from("=i", data, at + 16)[0], "sock_diag")
                yield data, at + 16
                at += (length + 3) & ~3
            if not flags & NLM_F_DUMP:
                return  # an exact lookup is answered in one read


def unix_sockets() -> set[tuple[int, int]]:
    """(inode, cookie) of every unix socket in the supervisor's network
    namespace: one dump, where unix_lookup of each would walk them all."""
    body = _UNIX_REQ.pack(socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, 0, 0, 0)
    found = set()
    for data, at in diag_messages(body, NLM_F_REQUEST | NLM_F_DUMP):
        ino, low, high = _UNIX_MSG.unpack_from(data, at)[4:]
        found.add((ino, low | high << 32))
    return found


_SB_DEVS: dict[int, int] = {}  # mount id -> its superblock's device, from mountinfo


def file_key(fd: int) -> tuple:
    """A socket file's identity as unix sock_diag gives it (its superblock's
    device and its inode number), not stat's: btrfs and overlayfs report
    other numbers to stat."""
    info = os.open(f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        text = os.read(info, 4096)
    finally:
        os.close(info)
    mount = int(text.split(b"mnt_id:", 1)[1].split(None, 1)[0])
    ino = int(text.split(b"\nino:", 1)[1].split(None, 1)[0])
    if mount not in _SB_DEVS:
        _SB_DEVS.clear()
        with open("/proc/self/mountinfo", "rb") as handle:
            for line in handle:
                parts = line.split()
                major, minor = parts[2].split(b":")
                _SB_DEVS[int(parts[0])] = os.makedev(int(major), int(minor))
    return ("vfs", _SB_DEVS.get(mount), ino & 0xFFFFFFFF)  # sock_diag's inode field has 32 bits


def unix_listened_inside(sup, caller_tgid: int, where: tuple) -> bool:
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
    return sup.confinement_covers(caller_tgid, confinement)
