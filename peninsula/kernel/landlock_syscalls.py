"""The three Landlock syscalls and the access rights peninsula uses.

landlockpy's package import costs some 10 ms of every start (its
__init__ always imports its `testing` module, which pulls in dataclasses,
pathlib and urllib; its syscall layer imports ctypes.util and subprocess),
and a submodule cannot be imported without running that __init__. The
baseline needs only this much, so it calls the kernel directly, as
kernel/libc.py does. Values are those of linux/landlock.h.
"""

from __future__ import annotations

import ctypes

from peninsula.kernel.libc import _check, _syscall, prctl_set_no_new_privs

NR_LANDLOCK_CREATE_RULESET = 444  # the same on every architecture
NR_LANDLOCK_ADD_RULE = 445
NR_LANDLOCK_RESTRICT_SELF = 446
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1
RULE_NET_PORT = 2

# LANDLOCK_ACCESS_FS_*
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
RESOLVE_UNIX = 1 << 16  # ABI 9
# LANDLOCK_ACCESS_NET_* (ABI 4)
BIND_TCP = 1 << 0
CONNECT_TCP = 1 << 1
# LANDLOCK_SCOPE_* (ABI 6)
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1


def fs_rights_for_abi(abi: int) -> int:
    """Every filesystem right the given ABI knows."""
    rights = (1 << 13) - 1 if abi >= 1 else 0
    for right, since in ((REFER, 2), (TRUNCATE, 3), (IOCTL_DEV, 5), (RESOLVE_UNIX, 9)):
        if abi >= since:
            rights |= right
    return rights


class RulesetAttr(ctypes.Structure):
    # The ABI 6 layout; a kernel that predates `scoped` accepts it while
    # the field is zero.
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # packed in the kernel's header: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def abi_version() -> int:
    """The kernel's Landlock ABI; OSError (ENOSYS, EOPNOTSUPP) without Landlock."""
    return _check(_syscall(NR_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION)))


def create_ruleset(handled_fs: int, handled_net: int, scoped: int) -> int:
    """A new ruleset's fd (the kernel opens it close-on-exec)."""
    attr = RulesetAttr(handled_fs, handled_net, scoped)
    return _check(_syscall(NR_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
                           ctypes.c_uint32(0)))


def add_path_beneath(ruleset_fd: int, parent_fd: int, allowed: int) -> None:
    attr = PathBeneathAttr(allowed, parent_fd)
    _check(_syscall(NR_LANDLOCK_ADD_RULE, ruleset_fd, RULE_PATH_BENEATH, ctypes.byref(attr), ctypes.c_uint32(0)))


def add_net_port(ruleset_fd: int, port: int, allowed: int) -> None:
    attr = NetPortAttr(allowed, port)
    _check(_syscall(NR_LANDLOCK_ADD_RULE, ruleset_fd, RULE_NET_PORT, ctypes.byref(attr), ctypes.c_uint32(0)))


def restrict_self(ruleset_fd: int) -> None:
    """no_new_privs, then the ruleset on the calling thread and its future children."""
    prctl_set_no_new_privs()
    _check(_syscall(NR_LANDLOCK_RESTRICT_SELF, ruleset_fd, ctypes.c_uint32(0)))
