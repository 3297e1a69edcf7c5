"""The capabilities a root supervisor acts with for a target.

An emulated call runs with the supervisor's credentials. Taking the
target's fsuid, fsgid and groups is not enough for a root target that
dropped its capabilities (setpriv --bounding-set=-all): the supervisor's
CAP_DAC_OVERRIDE, CAP_CHOWN and CAP_FOWNER would carry out what the kernel
refuses the target. So, for the duration of a request, the acting thread's
effective set is the target's (within our permitted set), plus the few the
supervisor needs for its own work and that decide no file access:
CAP_SYS_PTRACE (the target's memory and /proc entries; paths are resolved
with RESOLVE_NO_MAGICLINKS and /proc writes beyond the target's own are
refused by policy), and CAP_SETUID/CAP_SETGID (to take and give back
identities). capset with pid 0 changes the calling thread only.
"""

from __future__ import annotations

import ctypes
import errno

NR_CAPGET, NR_CAPSET = 125, 126
VERSION_3 = 0x20080522
CAP_SETGID, CAP_SETUID, CAP_SYS_PTRACE = 6, 7, 19
KEEP = (1 << CAP_SETGID) | (1 << CAP_SETUID) | (1 << CAP_SYS_PTRACE)

_libc = ctypes.CDLL(None, use_errno=True)


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def get() -> tuple[int, int, int]:
    """The calling thread's (effective, permitted, inheritable) sets."""
    header, data = _Header(VERSION_3, 0), (_Data * 2)()
    if _libc.syscall(NR_CAPGET, ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    return tuple(getattr(data[0], f) | getattr(data[1], f) << 32 for f in ("effective", "permitted", "inheritable"))


def set_effective(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's capability sets (only lowering effective
    below permitted, or raising it back)."""
    header, data = _Header(VERSION_3, 0), (_Data * 2)()
    for word in (0, 1):
        shift = 32 * word
        data[word].effective = (effective >> shift) & 0xFFFFFFFF
        data[word].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[word].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.syscall(NR_CAPSET, ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno() or errno.EPERM, "capset failed")


def acting_set(target_effective: int, mine: tuple[int, int, int]) -> int:
    """The effective set to act with for a target."""
    return (target_effective & mine[1]) | (mine[0] & KEEP)
