"""Thin ctypes wrappers for the syscalls Python's os module lacks.

Each function is named after the syscall it wraps and raises OSError with
the kernel's errno, like the os module does.
"""

from __future__ import annotations

import ctypes
import errno
import os

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# x86_64 syscall numbers used directly.
NR_SECCOMP = 317
NR_OPENAT2 = 437
NR_RENAMEAT2 = 316
NR_FCHMODAT2 = 452
NR_PIDFD_OPEN = 434
NR_PIDFD_GETFD = 438

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
RESOLVE_CACHED = 0x20
RESOLVE_ALL = 0x3F


def _check(result: int) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


class OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: bytes, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = OpenHow(flags, mode, resolve)
    # Under RESOLVE_BENEATH or RESOLVE_IN_ROOT a ".." walked while anything
    # on the system is renamed gives EAGAIN ("retry"): the supervisor walks
    # a target's path in several steps, so it retries rather than hand the
    # target an EAGAIN its own single walk would hardly ever see.
    for _ in range(16 if resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) and not resolve & RESOLVE_CACHED else 1):
        ctypes.set_errno(0)
        result = _syscall(NR_OPENAT2, dirfd, path, ctypes.byref(how), ctypes.sizeof(how))
        if result >= 0 or ctypes.get_errno() != errno.EAGAIN:
            break
    return _check(result)


def renameat2(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> None:
    _check(_syscall(NR_RENAMEAT2, olddirfd, old, newdirfd, new, ctypes.c_uint(flags)))


def fchmodat2(dirfd: int, path: bytes, mode: int, flags: int) -> None:
    _check(_syscall(NR_FCHMODAT2, dirfd, path, ctypes.c_uint(mode), ctypes.c_uint(flags)))


_fchownat = _libc.fchownat
_fchownat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint, ctypes.c_int]


def fchownat(dirfd: int, path: bytes, uid: int, gid: int, flags: int) -> None:
    _check(_fchownat(dirfd, path, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF, flags))


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_utimensat = _libc.utimensat
_utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]


def utimensat(dirfd: int, path: bytes, times: "ctypes.Array[Timespec] | None", flags: int) -> None:
    ptr = ctypes.addressof(times) if times is not None else None
    _check(_utimensat(dirfd, path, ptr, flags))


_linkat = _libc.linkat
_linkat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]


def linkat(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> None:
    _check(_linkat(olddirfd, old, newdirfd, new, flags))


def pidfd_getfd(pidfd: int, targetfd: int) -> int:
    """A duplicate (O_CLOEXEC) of another process's open file."""
    return _check(_syscall(NR_PIDFD_GETFD, pidfd, targetfd, 0))


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_process_vm_readv = _libc.process_vm_readv
_process_vm_readv.argtypes = [
    ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_ulong,
    ctypes.POINTER(IoVec), ctypes.c_ulong, ctypes.c_ulong,
]
_process_vm_readv.restype = ctypes.c_ssize_t


def process_vm_readv(pid: int, local: IoVec, remote: IoVec) -> int:
    """One-segment read of another process's memory; returns bytes read."""
    return _check(_process_vm_readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0))


def seccomp(operation: int, flags: int, args: ctypes.c_void_p | None) -> int:
    return _check(_syscall(NR_SECCOMP, ctypes.c_uint(operation), ctypes.c_uint(flags), args))


_ioctl = _libc.ioctl
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]


def ioctl(fd: int, request: int, arg: int) -> int:
    """ioctl with an integer argument: the address of a ctypes object, or a value."""
    return _check(_ioctl(fd, request, arg))


def prctl_set_no_new_privs() -> None:
    PR_SET_NO_NEW_PRIVS = 38
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))


def prctl_set_child_subreaper() -> None:
    PR_SET_CHILD_SUBREAPER = 36
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0))
