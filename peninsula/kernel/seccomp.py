"""The seccomp user-notify filter and the raw notify ioctls.

The filter is built with pyseccomp (which exports good BPF), then loaded with
a raw seccomp() call so we can ask for WAIT_KILLABLE_RECV. The notify ioctls
are driven directly: pyseccomp's helpers only work in the process that
loaded the filter, and libseccomp 2.5.4 turns every ioctl error into
ECANCELED.
"""

from __future__ import annotations

import ctypes
import errno
import os
import tempfile

from peninsula.kernel import libc

SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
SECCOMP_IOCTL_NOTIF_ID_VALID = 0x40082102
SECCOMP_IOCTL_NOTIF_ADDFD = 0x40182103
SECCOMP_IOCTL_NOTIF_SET_FLAGS = 0x40082104

SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
SECCOMP_ADDFD_FLAG_SETFD = 1
SECCOMP_ADDFD_FLAG_SEND = 2
SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1

TIOCSTI = 0x5412
TIOCLINUX = 0x541C
# TIOCSCTTY with a non-zero argument: take a terminal that is another
# session's controlling one (root only). A confined root process could
# open any terminal read-only (never trapped), take it, and write it
# through /dev/tty. Refused to confined processes like the mount API.
TIOCSCTTY = 0x540E

# ioctls that change an inode's flags or attributes. They work on an fd
# opened read-only, so a file outside the sandbox could be made immutable
# or append-only (or have those flags lifted): sent to the supervisor.
FS_IOC_SETFLAGS = 0x40086602
FS_IOC32_SETFLAGS = 0x40046602
FS_IOC_FSSETXATTR = 0x401C5820
FS_IOC_SETVERSION = 0x40087602
FS_IOC32_SETVERSION = 0x40047602
# ...and ones that are refused outright (file-system wide, or irreversible).
FS_IOC_SETFSLABEL = 0x41009432
FS_IOC_SET_ENCRYPTION_POLICY = 0x800C6613
FS_IOC_ENABLE_VERITY = 0x40806685
INODE_IOCTLS = (FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS, FS_IOC_FSSETXATTR, FS_IOC_SETVERSION, FS_IOC32_SETVERSION)
REFUSED_IOCTLS = (FS_IOC_SETFSLABEL, FS_IOC_SET_ENCRYPTION_POLICY, FS_IOC_ENABLE_VERITY)

# The argument values the filter's conditions test (supervisor/table.py
# decides which syscall is trapped on which; these are the kernel's ABI).
# TCP Fast Open connects inside a send (MSG_FASTOPEN).
MSG_FASTOPEN = 0x20000000
CLONE_PARENT = 0x8000
F_SETOWN, F_SETOWN_EX = 8, 15
FIOSETOWN, SIOCSPGRP = 0x8901, 0x8902  # ioctls that name a SIGIO receiver
OPEN_TREE_CLONE = 1


# The x86_64 numbers of every syscall supervisor/table.py names (the only architecture
# peninsula runs on; the numbers are ABI). Looking them up needs no
# libseccomp, whose loading (ctypes.util.find_library runs `ldconfig -p`)
# cost each supervisor several milliseconds at start. libseccomp 2.5.4
# knows none of the four newest.
X86_64_SYSCALLS = {
    "acct": 163, "bpf": 321, "chdir": 80, "chmod": 90, "chown": 92, "chroot": 161, "clock_settime": 227, "bind": 49, "prlimit64": 302, "connect": 42, "sendto": 44, "sendmsg": 46, "sendmmsg": 307, "shutdown": 48, "listen": 50,
    "creat": 85, "delete_module": 176, "fchdir": 81, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452,
    "fchown": 93, "fchownat": 260, "file_setattr": 469, "finit_module": 313, "fremovexattr": 199,
    "fsetxattr": 190, "futimesat": 261, "init_module": 175, "io_uring_enter": 426, "io_uring_register": 427,
    "io_uring_setup": 425, "ioctl": 16, "ioperm": 173, "iopl": 172, "kexec_file_load": 320, "kexec_load": 246,
    "lchown": 94, "link": 86, "linkat": 265, "lremovexattr": 198, "lsetxattr": 189, "mkdir": 83,
    "mkdirat": 258, "mknod": 133, "mknodat": 259, "mount": 165, "mount_setattr": 442, "move_mount": 429,
    "fsconfig": 431, "fsmount": 432, "fsopen": 430, "fspick": 433, "open_tree": 428, "open_tree_attr": 467,
    "pivot_root": 155, "umount2": 166, "open": 2, "open_by_handle_at": 304, "openat": 257,
    "openat2": 437, "pidfd_getfd": 438, "process_vm_writev": 311, "ptrace": 101, "quotactl": 179,
    "quotactl_fd": 443, "reboot": 169, "seccomp": 317, "removexattr": 197, "removexattrat": 466, "rename": 82,
    "renameat": 264, "renameat2": 316, "rmdir": 84, "setns": 308, "settimeofday": 164, "setxattr": 188, "setxattrat": 463, "swapoff": 168, "swapon": 167,
    "symlink": 88, "symlinkat": 266, "truncate": 76, "unlink": 87, "unlinkat": 263, "userfaultfd": 323,
    "utime": 132, "utimensat": 280, "utimes": 235,
    # the shell session's process traps
    "clone": 56, "clone3": 435, "fcntl": 72, "kill": 62, "pidfd_send_signal": 424, "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297, "tgkill": 234, "tkill": 200, "exit_group": 231,
}


def syscall_number(name: str) -> int | None:
    """The x86_64 number of a syscall, or None when nobody knows it."""
    number = X86_64_SYSCALLS.get(name)
    if number is not None:
        return number
    import pyseccomp as sc

    number = sc.resolve_syscall(sc.system_arch(), name)
    return number if number >= 0 else None


def build_filter_bpf(rules) -> bytes:
    """Return the exported BPF program (struct sock_filter array) as bytes.

    rules: (syscall name, action, tests) in order (supervisor/table.rules):
    action None sends the call to the listener, an int refuses it with that
    errno; each test is (argument index, "eq" | "ne" | "masked_eq", value,
    mask), and all of a rule's tests must hold."""
    import pyseccomp as sc

    ops = {"eq": sc.EQ, "ne": sc.NE, "masked_eq": sc.MASKED_EQ}
    flt = sc.SyscallFilter(sc.ALLOW)
    # A foreign-architecture syscall (int 0x80 from a 64-bit process) would
    # dodge every rule: kill it.
    flt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    flt.set_attr(sc.Attr.CTL_NNP, 0)  # the launcher sets no_new_privs itself
    for name, action, tests in rules:
        args = [sc.Arg(index, ops[op], mask, value) if op == "masked_eq" else sc.Arg(index, ops[op], value)
                for index, op, value, mask in tests]
        _add(flt, sc.NOTIFY if action is None else sc.ERRNO(action), name, *args)
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return out.read()


def _add(flt, action, name, *args) -> None:
    number = syscall_number(name)
    if number is None:
        raise ValueError(f"unknown syscall {name}")
    flt.add_rule(action, number, *args)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class FilterProgram:
    """A BPF program kept in memory so loading it allocates nothing new."""

    def __init__(self, bpf: bytes):
        self._buf = ctypes.create_string_buffer(bpf, len(bpf))
        self.prog = SockFprog(len(bpf) // 8, ctypes.addressof(self._buf))

    def load(self, killable: bool = True) -> int:
        """Install the filter on the calling thread; returns the listener fd."""
        flags = SECCOMP_FILTER_FLAG_NEW_LISTENER
        if killable:
            flags |= SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
        return libc.seccomp(SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(self.prog))


class SeccompData(ctypes.Structure):
    _fields_ = [
        ("nr", ctypes.c_int),
        ("arch", ctypes.c_uint32),
        ("instruction_pointer", ctypes.c_uint64),
        ("args", ctypes.c_uint64 * 6),
    ]


class Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("data", SeccompData)]


class NotifResp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32), ("flags", ctypes.c_uint32)]


class NotifAddfd(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("srcfd", ctypes.c_uint32),
        ("newfd", ctypes.c_uint32),
        ("newfd_flags", ctypes.c_uint32),
    ]


class Listener:
    """The supervisor's end of a filter: receive requests, answer them."""

    def __init__(self, fd: int):
        self.fd = fd
        self._notif = Notif()
        self._notif_addr = ctypes.addressof(self._notif)
        self._notif_size = ctypes.sizeof(self._notif)
        self._resp = NotifResp()
        self._resp_addr = ctypes.addressof(self._resp)
        self._addfd = NotifAddfd()
        self._addfd_addr = ctypes.addressof(self._addfd)
        self._id = ctypes.c_uint64()
        self._id_addr = ctypes.addressof(self._id)

    def set_sync_wakeup(self) -> bool:
        """Wake the target on the supervisor's CPU and the supervisor on the
        target's: the round trip stays on one CPU (7 us instead of ~50 us on
        this VM when the other CPU is idle). The kernel takes the flags as
        the ioctl's value, not through a pointer (EINVAL otherwise)."""
        try:
            libc.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
            return True
        except OSError:
            return False

    def recv(self) -> Notif | None:
        """The next request, or None when it vanished before we got it."""
        ctypes.memset(self._notif_addr, 0, self._notif_size)
        try:
            libc.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_RECV, self._notif_addr)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                return None
            raise
        return self._notif

    def take(self, raw: bytes) -> Notif:
        """A request received elsewhere (the compiled hot path deferred it)."""
        ctypes.memmove(self._notif_addr, raw, self._notif_size)
        return self._notif

    def id_valid(self, req_id: int) -> bool:
        self._id.value = req_id
        try:
            libc.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_ID_VALID, self._id_addr)
            return True
        except OSError:
            return False

    def _send(self, req_id: int, val: int, error: int, flags: int) -> None:
        resp = self._resp
        resp.id, resp.val, resp.error, resp.flags = req_id, val, error, flags
        try:
            libc.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_SEND, self._resp_addr)
        except OSError as err:
            # ENOENT: the target died or was interrupted; nothing to answer.
            if err.errno not in (errno.ENOENT, errno.EINPROGRESS):
                raise

    def reply(self, req_id: int, val: int) -> None:
        self._send(req_id, val, 0, 0)

    def fail(self, req_id: int, err: int) -> None:
        self._send(req_id, 0, -err, 0)

    def allow_continue(self, req_id: int) -> None:
        self._send(req_id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)

    def reply_fd(self, req_id: int, srcfd: int, cloexec: bool) -> None:
        """Install srcfd in the target and make it the syscall's result.

        Two steps, ADDFD then SEND with the new number, not one ADDFD with
        SECCOMP_ADDFD_FLAG_SEND: when the supervisor's ADDFD+SEND ioctl is
        interrupted (SIGSTOP, Ctrl-Z of the job) before the target took the
        fd, the kernel has already marked the request answered and the
        target's open() returns 0, with no fd installed (seen here, 6.18).
        An interrupted plain ADDFD is withdrawn and restarted cleanly. The
        gap between the two steps is safe because the filter is loaded with
        WAIT_KILLABLE_RECV: once we hold the request, only a fatal signal
        takes the target out of it (and then its fd table goes too).
        """
        add = self._addfd
        add.id, add.flags, add.srcfd, add.newfd = req_id, 0, srcfd, 0
        add.newfd_flags = os.O_CLOEXEC if cloexec else 0
        try:
            newfd = libc.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_ADDFD, self._addfd_addr)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.EINPROGRESS):
                return
            # EMFILE and friends: the target could not take the fd; tell it.
            self.fail(req_id, err.errno)
            return
        self.reply(req_id, newfd)
