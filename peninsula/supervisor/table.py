"""The syscall table: every syscall the seccomp filter traps or refuses.

One row per syscall says when the filter sends it here or refuses it (its
BPF conditions, as data), which filters carry each condition (`run`, the
shell session, with or without --fast), which handler answers it (a module
of supervisor/handlers, or the shell session's judge), whether the
compiled hot path may answer it, and what is special about it. It is the
support record too: a syscall no row names runs untouched.

Built from it: the BPF program (rules() -> kernel/seccomp.build_filter_bpf),
the Python dispatch (handlers(); lineage_handlers() and judge_handlers() for
the shell judge) and the compiled dispatch (compiled(): syscall number ->
the name of a C handler in _fastpath). Within a row the conditions are in the order
the filter is given them (libseccomp's program depends on that order
within one syscall, not across syscalls).
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
from typing import NamedTuple

from peninsula.kernel import seccomp
from peninsula.kernel.seccomp import syscall_number

NOTIFY = "notify"  # sent to the supervisor (SECCOMP_RET_USER_NOTIF)
RUN, SESSION = "run", "session"  # the filter of `peninsula run`, the shell session's (trap_chdir)
BOTH = frozenset((RUN, SESSION))

# The handler families: modules of supervisor/handlers whose h_<name>(req)
# run with the target's identity; lineage, whose h_<name>(sup, req) judge
# the shell session's process calls; and the shell session's judge
# (shell/judge.py), whose methods are looked up on the supervisor object.
FAMILIES = ("opens", "names", "metadata", "xattr", "process", "connect", "bind", "listen")
LINEAGE, JUDGE = "lineage", "judge"


class Arg(NamedTuple):
    """One test on a syscall argument: `eq` / `ne` compare all 64 bits with
    value; `masked_eq` is (arg & mask) == value."""

    index: int
    op: str
    value: int
    mask: int = 0


class Condition(NamedTuple):
    """One BPF rule: when every test holds (none: always), take action
    (NOTIFY or an errno) in the filters named. fast: None in both forms,
    False only without --fast (kernel_judges_names), True only with it."""

    tests: tuple[Arg, ...] = ()
    action: str | int = NOTIFY
    filters: frozenset = BOTH
    fast: bool | None = None


# Named tuples, not dataclasses: the supervisor imports this at every start,
# and three dataclasses made it some 1.5 ms slower to import.
class Row(NamedTuple):
    name: str
    conditions: tuple[Condition, ...]
    family: str | None  # None: refused in BPF, no handler
    note: str
    handler: str | None = None  # the Python handler's name; default h_<name>
    compiled: str | None = None  # the C handler (_fastpath.HANDLERS) that may answer it
    # Handlers, as family.function, that the shell judge's dispatch routes
    # some of this row's conditions to instead (shell/judge.py).
    routed: tuple[str, ...] = ()

    @property
    def python_handler(self) -> str | None:
        return None if self.family is None else (self.handler or f"h_{self.name}")


# Any one of these in an open's flags is a write intent.
WRITE_INTENT_BITS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC)
ALWAYS = (Condition(),)
NOT_FAST = (Condition(fast=False),)  # left to Landlock under --fast (policy.landlock_expressible)
SESSION_ONLY = (Condition(filters=frozenset((SESSION,))),)


def _ioctl(request: int, action=NOTIFY, filters=BOTH, *more: Arg) -> Condition:
    # The kernel compares only the low 32 bits of an ioctl request.
    return Condition((Arg(1, "masked_eq", request, 0xFFFFFFFF), *more), action, filters)


def _write_intent(index: int, judged_by_kernel: bool, fast: bool | None) -> tuple[Condition, ...]:
    """The flag conditions (each alone sends the open here), carried in the
    filters whose --fast is fast (None: both)."""
    if not judged_by_kernel:
        return tuple(Condition((Arg(index, "masked_eq", bit, bit),), fast=fast) for bit in WRITE_INTENT_BITS)
    # Every write-intent open except O_CREAT|O_EXCL, which can only make a
    # new file: Landlock alone judges where. (O_EXCL without O_CREAT is
    # ignored by the kernel, so it does not exempt an open.)
    creat_excl = os.O_CREAT | os.O_EXCL
    out = [Condition((Arg(index, "masked_eq", os.O_CREAT, creat_excl),), fast=fast)]
    for bit in (os.O_WRONLY, os.O_RDWR, os.O_TRUNC):
        out.append(Condition((Arg(index, "masked_eq", bit, bit | os.O_EXCL),), fast=fast))
        out.append(Condition((Arg(index, "masked_eq", bit | os.O_EXCL, bit | creat_excl),), fast=fast))
    return tuple(out)


def _opens(index: int) -> tuple[Condition, ...]:
    return _write_intent(index, False, False) + _write_intent(index, True, True)


def _refused(err: int, filters=BOTH) -> tuple[Condition, ...]:
    return (Condition(action=err, filters=filters),)


# The mount API changes host mounts' flags (mount_setattr can make a host
# file system read-only, or clear nosuid) and what a path means (an fd on a
# detached or private mount reads, in /proc/self/fd, relative to that
# mount's root). Refused in BPF for `run`, where every process is confined
# (namespaces asked for with --unshare-* are made before the filter); in
# the shell session the judge refuses it to confined processes only, as
# its unconfined ones may use it (bwrap, podman).
def _mount(*tests: Arg) -> tuple[Condition, ...]:
    return (Condition(tests, NOTIFY, frozenset((SESSION,))), Condition(tests, errno.EPERM, frozenset((RUN,))))


def _signal(index: int) -> tuple[Condition, ...]:
    # Not equal in all 64 bits: a signal number with high bits set (the
    # kernel reads only the low 32) comes here as well. Signal 0 only asks
    # whether the receiver exists: BPF lets it through (polling loops).
    return (Condition((Arg(index, "ne", 0),), filters=frozenset((SESSION,))),)


_FASTOPEN = "TCP Fast Open connects inside a send, past connect() and Landlock's TCP rule: EOPNOTSUPP, as the kernel says when client TFO is off"
_LINEAGE = "shell session: a confined process must not signal the shell or a laxer session process"
_KERNEL_CODE = "root-only way around a file-system sandbox (a plain user gets EPERM anyway)"
_MOUNT = "the mount API: refused in BPF for run; the shell judge refuses it to confined processes"

ROWS: tuple[Row, ...] = (
    # -- opens -------------------------------------------------------------
    Row("open", _opens(1), "opens", "write-intent flags only (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC); --fast leaves O_CREAT|O_EXCL to Landlock",
        compiled="open"),
    Row("openat", _opens(2), "opens", "as open, flags in argument 2", compiled="openat"),
    Row("open_by_handle_at", _write_intent(2, False, None),
        "opens", "write-intent flags; never exempted by --fast (a handle names no parent directory for Landlock)"),
    Row("creat", ALWAYS, "opens", "always a write-intent open", compiled="creat"),
    Row("openat2", ALWAYS, "opens", "its flags are in memory (struct open_how), where BPF cannot read them"),
    # -- names: create, remove, rename, link -------------------------------
    Row("mkdir", NOT_FAST, "names", "left to Landlock under --fast", compiled="mkdir"),
    Row("mkdirat", NOT_FAST, "names", "left to Landlock under --fast", compiled="mkdirat"),
    Row("mknod", ALWAYS, "names", "devices and FIFOs are more than a place: never left to Landlock"),
    Row("mknodat", ALWAYS, "names", "as mknod"),
    Row("unlink", NOT_FAST, "names", "left to Landlock under --fast", compiled="unlink"),
    Row("unlinkat", NOT_FAST, "names", "left to Landlock under --fast; C only for flags 0 or AT_REMOVEDIR", compiled="unlinkat"),
    Row("rmdir", NOT_FAST, "names", "left to Landlock under --fast", compiled="rmdir"),
    Row("rename", NOT_FAST, "names", "both ends judged; left to Landlock under --fast", compiled="rename"),
    Row("renameat", NOT_FAST, "names", "as rename", compiled="renameat"),
    Row("renameat2", NOT_FAST, "names", "as rename, with RENAME_* flags", compiled="renameat2"),
    Row("link", NOT_FAST, "names", "both ends judged (a second name for the same inode); EXDEV for one from outside (names.CROSS_BOUNDARY)", compiled="link"),
    Row("linkat", NOT_FAST, "names", "as link; C only without AT_SYMLINK_FOLLOW / AT_EMPTY_PATH", compiled="linkat"),
    Row("symlink", NOT_FAST, "names", "left to Landlock under --fast"),
    Row("symlinkat", NOT_FAST, "names", "left to Landlock under --fast"),
    # -- metadata ----------------------------------------------------------
    Row("truncate", ALWAYS, "metadata", "by path: Landlock's TRUNCATE right needs ABI 3"),
    Row("chmod", ALWAYS, "metadata", "Landlock does not cover metadata", compiled="chmod"),
    Row("fchmodat", ALWAYS, "metadata", "as chmod", compiled="fchmodat"),
    Row("fchmodat2", ALWAYS, "metadata", "as chmod, with AT_SYMLINK_NOFOLLOW (libseccomp 2.5.4 does not know it)",
        compiled="fchmodat2"),
    Row("chown", ALWAYS, "metadata", "Landlock does not cover metadata", compiled="chown"),
    Row("lchown", ALWAYS, "metadata", "as chown, of the symlink itself", compiled="lchown"),
    Row("fchownat", ALWAYS, "metadata", "as chown", compiled="fchownat"),
    Row("utime", ALWAYS, "metadata", "times are metadata too"),
    Row("utimes", ALWAYS, "metadata", "times are metadata too"),
    Row("utimensat", ALWAYS, "metadata", "times; a NULL path means the fd itself", compiled="utimensat"),
    Row("futimesat", ALWAYS, "metadata", "times are metadata too"),
    Row("file_setattr", ALWAYS, "metadata", "inode flags by path: refused (not emulated)"),
    Row("fchmod", ALWAYS, "metadata", "through an fd that may be read-only on a file outside", compiled="fchmod"),
    Row("fchown", ALWAYS, "metadata", "through an fd that may be read-only on a file outside", compiled="fchown"),
    Row("ioctl", tuple(_ioctl(request, errno.EPERM) for request in (seccomp.TIOCSTI, seccomp.TIOCLINUX) + seccomp.REFUSED_IOCTLS)
        + tuple(_ioctl(request) for request in seccomp.INODE_IOCTLS)
        + tuple(_ioctl(request, NOTIFY, frozenset((SESSION,))) for request in (seccomp.FIOSETOWN, seccomp.SIOCSPGRP))
        + _mount(Arg(1, "masked_eq", seccomp.TIOCSCTTY, 0xFFFFFFFF), Arg(2, "ne", 0)),
        "metadata", "TIOCSTI, TIOCLINUX and file-system-wide ioctls refused; inode-flag ioctls judged; "
        "session: FIOSETOWN/SIOCSPGRP go to lineage.h_owner_ioctl; TIOCSCTTY with arg != 0 as the mount API",
        routed=("lineage.h_owner_ioctl",)),
    # -- extended attributes -----------------------------------------------
    Row("setxattr", ALWAYS, "xattr", "Landlock does not cover xattrs"),
    Row("lsetxattr", ALWAYS, "xattr", "as setxattr, of the symlink itself"),
    Row("removexattr", ALWAYS, "xattr", "Landlock does not cover xattrs"),
    Row("lremovexattr", ALWAYS, "xattr", "as removexattr, of the symlink itself"),
    Row("setxattrat", ALWAYS, "xattr", "as setxattr (libseccomp 2.5.4 does not know it)"),
    Row("removexattrat", ALWAYS, "xattr", "as removexattr (libseccomp 2.5.4 does not know it)"),
    Row("fsetxattr", ALWAYS, "xattr", "through an fd that may be read-only on a file outside"),
    Row("fremovexattr", ALWAYS, "xattr", "through an fd that may be read-only on a file outside"),
    # -- reaching into another process -------------------------------------
    Row("ptrace", ALWAYS, "process", "another process's memory and registers"),
    Row("process_vm_writev", ALWAYS, "process", "writes another process's memory"),
    Row("pidfd_getfd", ALWAYS, "process", "takes another process's open files"),
    Row("prlimit64", (Condition((Arg(0, "ne", 0), Arg(2, "ne", 0))),), "process",
        "sets another process's limits (RLIMIT_CPU kills it, no signal sent): only a descendant's; "
        "reading them, and its own, untouched"),
    Row("seccomp", (Condition((Arg(0, "eq", seccomp.SECCOMP_SET_MODE_FILTER),
                               Arg(1, "masked_eq", seccomp.SECCOMP_FILTER_FLAG_NEW_LISTENER, seccomp.SECCOMP_FILTER_FLAG_NEW_LISTENER))),),
        "process", "a nested notify sandbox: the kernel refuses its listener (EBUSY) whatever we say; seen only to say why"),
    # -- sockets -----------------------------------------------------------
    Row("bind", ALWAYS, "bind", "a unix pathname makes a socket node, judged as mknod of a socket; every bind is "
        "made by the supervisor on the target's socket (no CONTINUE: the fd number could be swapped)"),
    Row("listen", ALWAYS, "listen", "records which confinement made a TCP socket listen (its SO_COOKIE) and makes the "
        "listen on the target's socket (no CONTINUE: the fd number could be swapped); --allow-bind judges the "
        "ephemeral port of an unbound socket; unix sockets CONTINUE (listen() names its caller as their peer)"),
    Row("shutdown", ALWAYS, "listen", "SHUT_RD / SHUT_RDWR take a TCP listener back to CLOSE: one an outside "
        "process made listen is tainted first (never recorded by a later listen); every shutdown is made on the "
        "target's socket (no CONTINUE: the fd number could be swapped)", handler="h_shutdown"),
    Row("connect", ALWAYS, "connect", "whom a socket reaches: the address is in memory (a unix listener, this host's port, another host)"),
    Row("sendto", (Condition((Arg(3, "masked_eq", seccomp.MSG_FASTOPEN, seccomp.MSG_FASTOPEN),), errno.EOPNOTSUPP),
                   Condition((Arg(4, "ne", 0),))),
        "connect", "with a destination (argument 4 not NULL) judged as connect; MSG_FASTOPEN refused"),
    Row("sendmsg", (Condition((Arg(2, "masked_eq", seccomp.MSG_FASTOPEN, seccomp.MSG_FASTOPEN),), errno.EOPNOTSUPP),), None, _FASTOPEN),
    Row("sendmmsg", (Condition((Arg(3, "masked_eq", seccomp.MSG_FASTOPEN, seccomp.MSG_FASTOPEN),), errno.EOPNOTSUPP),), None, _FASTOPEN),
    # -- refused outright ----------------------------------------------------
    Row("io_uring_setup", _refused(errno.ENOSYS), None, "its ring would bypass this filter"),
    Row("io_uring_enter", _refused(errno.ENOSYS), None, "its ring would bypass this filter"),
    Row("io_uring_register", _refused(errno.ENOSYS), None, "its ring would bypass this filter"),
    Row("userfaultfd", _refused(errno.ENOSYS), None, "could stall the supervisor's reads of the target's memory"),
    Row("chroot", _refused(errno.EPERM), None, "paths must mean the same to the supervisor and the target"),
    Row("setns", _refused(errno.EPERM), None, "paths must mean the same to the supervisor and the target"),
    Row("init_module", _refused(errno.EPERM), None, _KERNEL_CODE),
    Row("finit_module", _refused(errno.EPERM), None, _KERNEL_CODE),
    Row("delete_module", _refused(errno.EPERM), None, _KERNEL_CODE),
    Row("kexec_load", _refused(errno.EPERM), None, _KERNEL_CODE),
    Row("kexec_file_load", _refused(errno.EPERM), None, _KERNEL_CODE),
    Row("iopl", _refused(errno.EPERM), None, "raw I/O ports: " + _KERNEL_CODE),
    Row("ioperm", _refused(errno.EPERM), None, "raw I/O ports: " + _KERNEL_CODE),
    Row("bpf", _refused(errno.EPERM), None, "bpf_probe_write_user writes any process's memory: " + _KERNEL_CODE),
    Row("acct", _refused(errno.EPERM), None, "the kernel would append to any file named: " + _KERNEL_CODE),
    Row("swapon", _refused(errno.EPERM), None, "outlives the sandbox: " + _KERNEL_CODE),
    Row("swapoff", _refused(errno.EPERM), None, "outlives the sandbox: " + _KERNEL_CODE),
    Row("reboot", _refused(errno.EPERM), None, "outlives the sandbox: " + _KERNEL_CODE),
    Row("settimeofday", _refused(errno.EPERM), None, "outlives the sandbox: " + _KERNEL_CODE),
    Row("clock_settime", _refused(errno.EPERM), None, "outlives the sandbox: " + _KERNEL_CODE),
    Row("quotactl", _refused(errno.EPERM), None, "outlives the sandbox: " + _KERNEL_CODE),
    Row("quotactl_fd", _refused(errno.EPERM), None, "outlives the sandbox: " + _KERNEL_CODE),
    # -- the shell session: where the shell is, who signals whom ---------------
    Row("chdir", SESSION_ONLY, JUDGE, "shell session: the shell's cd moves it into or out of a project"),
    Row("fchdir", SESSION_ONLY, JUDGE, "as chdir"),
    Row("kill", _signal(1), LINEAGE, _LINEAGE + "; C answers a signal to the caller's own process", compiled="kill"),
    Row("tkill", _signal(1), LINEAGE, _LINEAGE),
    Row("tgkill", _signal(2), LINEAGE, _LINEAGE + "; C answers a signal to the caller's own process", compiled="tgkill"),
    Row("rt_sigqueueinfo", _signal(1), LINEAGE, _LINEAGE),
    Row("rt_tgsigqueueinfo", _signal(2), LINEAGE, _LINEAGE + "; C answers a signal to the caller's own process",
        compiled="rt_tgsigqueueinfo"),
    Row("pidfd_send_signal", _signal(1), LINEAGE, _LINEAGE),
    Row("clone", (Condition((Arg(0, "masked_eq", seccomp.CLONE_PARENT, seccomp.CLONE_PARENT),), filters=frozenset((SESSION,))),),
        LINEAGE, "shell session: CLONE_PARENT would make a child of the caller's parent, off its line"),
    Row("fcntl", tuple(Condition((Arg(1, "masked_eq", cmd, 0xFFFFFFFF),), filters=frozenset((SESSION,)))
                       for cmd in (seccomp.F_SETOWN, seccomp.F_SETOWN_EX)),
        LINEAGE, "shell session: F_SETOWN / F_SETOWN_EX choose who gets SIGIO"),
    Row("exit_group", SESSION_ONLY, LINEAGE, "shell session: the children a process leaves are judged while their "
        "line still leads to the shell (a daemon's is broken once its parent is gone); C answers one that leaves none. "
        "Not exit: a thread's end would cost every threaded program a round trip, and a process whose last thread "
        "ends by exit (not exit_group, as glibc's exit() makes) leaves its children to be judged as orphans, strict",
        compiled="exit_group"),
    Row("clone3", _refused(errno.ENOSYS, frozenset((SESSION,))), None,
        "shell session: its flags are in memory, so CLONE_PARENT could not be seen; glibc falls back to clone"),
    # -- the mount API -------------------------------------------------------
    *(Row(name, _mount(), JUDGE, _MOUNT, handler="h_mount_call")
      for name in ("mount", "umount2", "pivot_root", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
                   "mount_setattr", "open_tree_attr")),
    Row("open_tree", _mount(Arg(2, "masked_eq", seccomp.OPEN_TREE_CLONE, seccomp.OPEN_TREE_CLONE)), JUDGE,
        "only with OPEN_TREE_CLONE (a detached copy of a mount); without, it is an O_PATH open", handler="h_mount_call"),
)


def _carried(cond: Condition, which: str, kernel_judges_names: bool) -> bool:
    return which in cond.filters and cond.fast in (None, kernel_judges_names)


def rules(trap_chdir: bool = False, kernel_judges_names: bool = False) -> list[tuple]:
    """The filter's rules for seccomp.build_filter_bpf: (syscall, action,
    tests), action None for notify or an errno, each test (index, op,
    value, mask)."""
    which = SESSION if trap_chdir else RUN
    out = []
    for row in ROWS:
        for cond in row.conditions:
            if _carried(cond, which, kernel_judges_names):
                action = None if cond.action == NOTIFY else cond.action
                out.append((row.name, action, tuple((t.index, t.op, t.value, t.mask) for t in cond.tests)))
    return out


def trapped(trap_chdir: bool = False, kernel_judges_names: bool = False) -> tuple[str, ...]:
    """The syscalls the filter sends to the supervisor (under some condition)."""
    return tuple(dict.fromkeys(name for name, action, _ in rules(trap_chdir, kernel_judges_names) if action is None))


def _module(family: str):
    return importlib.import_module(f"peninsula.supervisor.handlers.{family}")


def handlers() -> dict[int, object]:
    """Syscall number -> handler of the supervisor families, for the syscalls
    this kernel knows (the run's dispatch; the shell session adds its own)."""
    from peninsula.supervisor.handlers.request import acting

    table = {}
    for row in ROWS:
        if row.family in FAMILIES:
            number = syscall_number(row.name)
            if number is not None:
                if row.family in LAZY_FAMILIES:
                    table[number] = _on_first_call(row.family, row.python_handler)
                else:
                    table[number] = acting(getattr(_module(row.family), row.python_handler))
    return table


# Imported when first needed: the socket handlers (and ipaddress) cost every
# start some 5 ms, and many commands never connect.
LAZY_FAMILIES = ("connect", "bind", "listen")


def _on_first_call(family: str, name: str):
    from peninsula.supervisor.handlers.request import acting

    handler = None

    def run(req):
        nonlocal handler
        if handler is None:  # imported as the supervisor, before acting as the target
            handler = acting(getattr(_module(family), name))
        return handler(req)

    run.__name__ = run.__qualname__ = name
    return run


def lineage_handlers(sup) -> dict[int, object]:
    """The shell session's process calls: number -> handler bound to sup."""
    module = _module(LINEAGE)
    return {syscall_number(row.name): functools.partial(getattr(module, row.python_handler), sup)
            for row in ROWS if row.family == LINEAGE}


def judge_handlers(judge) -> dict[int, object]:
    """The shell judge's own rows: number -> its method."""
    return {syscall_number(row.name): getattr(judge, row.python_handler) for row in ROWS if row.family == JUDGE}


def compiled(trap_chdir: bool = False) -> tuple[tuple[int, str], ...]:
    """(syscall number, C handler name) for the compiled engine of a filter:
    the rows it may answer that the filter sends to the supervisor."""
    which = SESSION if trap_chdir else RUN
    return tuple((syscall_number(row.name), row.compiled) for row in ROWS
                 if row.compiled and any(which in c.filters and c.action == NOTIFY for c in row.conditions))
