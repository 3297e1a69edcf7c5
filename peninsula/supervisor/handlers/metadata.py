"""Calls that change an inode's metadata or size: truncate, chmod, chown, utimes, file_setattr, chattr ioctls.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
from peninsula.supervisor.handlers import kernelorder
from peninsula.kernel import libc
from peninsula.supervisor.handlers.request import Denied, fd_only, signed_int, object_at, their_file
from peninsula.supervisor.handlers.devices import TIOCSCTTY
from peninsula.supervisor.handlers.request import refuse_privileged


def h_file_setattr(req):
    raise Denied(errno.EPERM, "(inode flags)", "changing inode flags is not emulated inside the sandbox", "file_setattr")


def _truncate(req, pinned, length):
    req.check_fd(pinned, "truncate", kernel=lambda: kernelorder.truncate(pinned, os.fstat(pinned)))
    with req.as_target():
        os.truncate(f"/proc/self/fd/{pinned}", length)
    return 0


def h_truncate(req):
    length = ctypes.c_int64(req.args[1]).value
    if length < 0:
        raise OSError(errno.EINVAL, "negative length")  # before the path, as do_sys_truncate()
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=True)
    return _truncate(req, pinned, length)


def _chmod(req, pinned, mode):
    if stat.S_ISLNK(os.fstat(pinned).st_mode):
        raise OSError(errno.EOPNOTSUPP, "chmod of a symlink")  # notify_change(), before ownership
    where = req.check_fd(pinned, "chmod", errno.EPERM, metadata=True,
                         kernel=lambda: kernelorder.chmod(pinned, req.status.fsuid))
    refuse_privileged(req, where, mode, stat.S_ISDIR(os.fstat(pinned).st_mode), "chmod")
    with req.as_target():
        try:
            libc.fchmodat2(pinned, b"", mode & 0o7777, libc.AT_EMPTY_PATH)
        except OSError as err:
            if err.errno != errno.ENOSYS:
                raise
            if stat.S_ISLNK(os.fstat(pinned).st_mode):
                raise OSError(errno.EOPNOTSUPP, "chmod of a symlink") from None
            os.chmod(f"/proc/self/fd/{pinned}", mode & 0o7777)
    return 0


def h_chmod(req):
    return _chmod(req, req.pin(libc.AT_FDCWD, req.path(0), follow=True), req.args[1])


def h_fchmodat(req):
    return _chmod(req, req.pin(req.dirfd(0), req.path(1), follow=True), req.args[2])


def h_fchmodat2(req):
    flags = signed_int(req.args[3])
    if flags & ~(libc.AT_SYMLINK_NOFOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    path = req.optional_path(1) or b""
    return _chmod(req, object_at(req, req.dirfd(0), path, flags), req.args[2])


def h_fchmod(req):
    return _chmod(req, fd_only(req, 0), req.args[1])


def _chown(req, pinned, uid, gid):
    st = req.status
    req.check_fd(pinned, "chown", errno.EPERM, metadata=True,
                 kernel=lambda: kernelorder.chown(pinned, uid, gid, st.fsuid, st.groups))
    with req.as_target():
        libc.fchownat(pinned, b"", uid, gid, libc.AT_EMPTY_PATH)
    return 0


def h_chown(req):
    return _chown(req, req.pin(libc.AT_FDCWD, req.path(0), follow=True), req.args[1], req.args[2])


def h_lchown(req):
    return _chown(req, req.pin(libc.AT_FDCWD, req.path(0), follow=False), req.args[1], req.args[2])


def h_fchownat(req):
    flags = signed_int(req.args[4])
    if flags & ~(libc.AT_SYMLINK_NOFOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    return _chown(req, object_at(req, req.dirfd(0), req.path(1), flags), req.args[2], req.args[3])


def h_fchown(req):
    return _chown(req, fd_only(req, 0), req.args[1], req.args[2])


def _utimens(req, pinned, pairs):
    """pairs: ((atime sec, nsec), (mtime sec, nsec)), or None for now."""
    err = kernelorder.times_error(pairs)
    if err:
        raise OSError(err, "nanoseconds out of range")
    req.check_fd(pinned, "utimes", errno.EPERM, metadata=True,
                 kernel=lambda: kernelorder.utimes(pinned, pairs, req.status.fsuid))
    times = None if pairs is None else _timespecs(pairs)
    with req.as_target():
        libc.utimensat(pinned, b"", times, libc.AT_EMPTY_PATH)
    return 0


def _timespecs(pairs):
    return (libc.Timespec * 2)(*(libc.Timespec(s, ns) for s, ns in pairs))


def h_utimensat(req):
    flags = signed_int(req.args[3])
    pairs = None
    if req.args[2]:
        secs = struct.unpack("=qqqq", req.memory(req.args[2], 32))
        pairs = ((secs[0], secs[1]), (secs[2], secs[3]))
        if secs[1] == secs[3] == kernelorder.UTIME_OMIT:
            return 0  # nothing to do: the kernel looks at nothing else, not even the path
    if flags & ~(libc.AT_SYMLINK_NOFOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    path = req.optional_path(1)
    if path is None:
        if flags:
            raise OSError(errno.EINVAL, "flags with no path")
        pinned = fd_only(req, 0)  # futimens(fd, times)
    else:
        pinned = object_at(req, req.dirfd(0), path, flags)
    return _utimens(req, pinned, pairs)


def _timevals(req, addr):
    if not addr:
        return None
    sec0, usec0, sec1, usec1 = struct.unpack("=qqqq", req.memory(addr, 32))
    if not (0 <= usec0 < 1_000_000 and 0 <= usec1 < 1_000_000):
        raise OSError(errno.EINVAL, "bad timeval")
    return (sec0, usec0 * 1000), (sec1, usec1 * 1000)


def h_utimes(req):
    pairs = _timevals(req, req.args[1])
    return _utimens(req, req.pin(libc.AT_FDCWD, req.path(0), follow=True), pairs)


def h_futimesat(req):
    pairs = _timevals(req, req.args[2])
    path = req.optional_path(1)
    pinned = fd_only(req, 0) if path is None else req.pin(req.dirfd(0), path, follow=True)
    return _utimens(req, pinned, pairs)


def h_utime(req):
    pairs = None
    if req.args[1]:
        actime, modtime = struct.unpack("=qq", req.memory(req.args[1], 16))
        pairs = (actime, 0), (modtime, 0)
    return _utimens(req, req.pin(libc.AT_FDCWD, req.path(0), follow=True), pairs)


# The size of what each trapped ioctl reads from its argument.
_IOCTL_ARG = {
    0x40086602: 4,  # FS_IOC_SETFLAGS: the kernel reads an int
    0x40046602: 4,  # FS_IOC32_SETFLAGS
    0x401C5820: 28,  # FS_IOC_FSSETXATTR: struct fsxattr
    0x40087602: 4,  # FS_IOC_SETVERSION
    0x40047602: 4,  # FS_IOC32_SETVERSION
}


def h_ioctl(req):
    """chattr and friends: they change the inode behind an fd that may have
    been opened read-only on a file outside. The call is made on a duplicate
    of the target's own open file (pidfd_getfd), so it behaves exactly as
    it would for the target, once the file's location is allowed."""
    cmd = req.args[1] & 0xFFFFFFFF
    if cmd == TIOCSCTTY:  # the shell session sends the stealing form here: refused when confined
        raise OSError(errno.EPERM, "taking another session's terminal")
    size = _IOCTL_ARG.get(cmd)
    if size is None:
        raise OSError(errno.ENOSYS, "not an emulated ioctl")
    fd = req.dirfd(0)
    if fd < 0:
        raise OSError(errno.EBADF, "bad fd")
    theirs = their_file(req, fd)
    req.check_fd(theirs, "chattr", errno.EPERM, metadata=True)
    data = req.memory(req.args[2], size)
    buf = ctypes.create_string_buffer(data, size)
    with req.as_target():
        libc.ioctl(theirs, cmd, ctypes.addressof(buf))
    return 0
