"""Who may make and signal which process in the shell session.

A process is judged by the head of its line, the shell's child that it
descends from (judge.state_of). Two syscalls let a confined process
break that rule, and both are decided here:

- clone(CLONE_PARENT) makes the new process a child of the caller's
  parent: from a direct child of the shell, a new child of the shell,
  started after the shell may have left the project. It is refused
  (EPERM) to confined callers. clone3 carries its flags in memory, where
  BPF cannot tell CLONE_PARENT apart; the session's filter answers it
  ENOSYS so that glibc falls back to clone (supervisor/table.py). The
  other ways to make a process (fork, vfork, clone without CLONE_PARENT)
  make a child of the caller, in the caller's line.
- a signal to the shell, or to a session process that is not confined at
  least as strictly as the sender (SIGSTOP the shell, SIGKILL a laxer
  process), is refused with the kernel's EPERM. Landlock's signal scoping
  already stops signals leaving the session; inside it the shell and its
  unconfined children share one domain, so only the supervisor can tell.
  Signal 0 (does the process exist?) delivers nothing and stays allowed.

The targets of kill, tkill, tgkill and rt_*sigqueueinfo and the pid of
F_SETOWN are register values, so answering CONTINUE after judging them is
a value check. A pidfd, an f_owner_ex or an ioctl's pid are read from
what the caller can change in the meantime (its fd table, its memory),
so those calls are done here, on what was judged.
"""

from __future__ import annotations

import ctypes
import errno
import os

from peninsula.supervisor.handlers import request
from peninsula.kernel import libc
from peninsula.kernel import target
from peninsula.kernel.seccomp import F_SETOWN_EX, FIOSETOWN, SIOCSPGRP

NR_PIDFD_SEND_SIGNAL = 424
PIDFD_SIGNAL_PROCESS_GROUP = 4
F_OWNER_PID, F_OWNER_PGRP = 1, 2
SIGINFO_SIZE = 128


class FOwnerEx(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("pid", ctypes.c_int)]


def _signed(value: int) -> int:
    return ctypes.c_int(value & 0xFFFFFFFF).value


def h_clone(sup, req):
    """clone with CLONE_PARENT (BPF sends no other clone here)."""
    if req.tgid == sup.shell_pid or not sup.state_of(req.tgid).confined:
        return request.CONTINUE  # a new child of the shell's parent, or of an unconfined line
    raise request.Denied(errno.EPERM, f"pid {req.tgid} ({target.comm(req.tgid)})",
                         "a confined process may not make a sibling (CLONE_PARENT): it would "
                         "start a new line under its parent", "clone")


def h_exit_group(sup, req):
    """exit_group: the children the process leaves are
    reparented off their line when it is gone, so each is judged now, while
    its line still leads to the shell, and the answer kept (a daemon
    started at a prompt outside projects stays unconfined; one started in
    a project stays confined to it). A process killed by a signal makes no
    call: its children are judged as orphans are (strict)."""
    sup.judge_children(req.tgid)
    return request.CONTINUE


def _process_group(pgrp: int) -> list[int]:
    """Every process whose process group is pgrp (/proc, field 5)."""
    return [pid for pid, fields in target.proc_stats() if int(fields[2]) == pgrp]


def _own_pgrp(tgid: int) -> int:
    with open(f"/proc/{tgid}/stat", "rb") as handle:
        stat = handle.read()
    return int(stat[stat.rindex(b")") + 2 :].split()[2])


def _everyone() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _tgid_of(tid: int) -> int | None:
    try:
        return target.Status(tid).tgid
    except (OSError, KeyError, ValueError):
        return None  # no such thread: the kernel answers ESRCH itself


def judge_receivers(sup, req, receivers: list[int], op: str, verb: str = "signal") -> None:
    """Raise Denied (EPERM) unless a confined caller may signal (or, with
    verb, reach into) each of receivers (process ids). An unconfined
    caller, or the shell, may."""
    sender = req.tgid
    if sender == sup.shell_pid:
        return
    mine = sup.state_of(sender)
    if not mine.confined:
        return
    for pid in receivers:
        if pid == sender:
            continue
        if pid == sup.shell_pid:
            reason = "the session's shell"
        else:
            try:
                theirs = sup.state_of(pid)
            except OSError:
                continue
            if _at_least_as_strict(theirs, mine):
                continue  # confined at least as strictly as the sender
            reason = f"a process that is {theirs.describe()}"
        raise request.Denied(errno.EPERM, f"pid {pid} ({target.comm(pid)})",
                             f"a confined process may not {verb} {reason}", op)


def _at_least_as_strict(theirs, mine) -> bool:
    """theirs allows no more than mine: the same state, strict, or a nested
    run's state (nested.py) whose outer side is mine or stricter."""
    if theirs == mine or theirs.strict:
        return True
    outer = getattr(theirs, "outer", None)
    return outer is not None and _at_least_as_strict(outer, mine)


def _kill_receivers(req, pid: int) -> list[int]:
    if pid > 0:
        tgid = _tgid_of(pid)
        return [tgid] if tgid is not None else []
    if pid == 0:
        return _process_group(_own_pgrp(req.tgid))
    if pid == -1:
        return [p for p in _everyone() if p != 1]
    return _process_group(-pid)


def h_kill(sup, req):
    pid, sig = _signed(req.args[0]), _signed(req.args[1])
    if sig != 0:
        judge_receivers(sup, req, _kill_receivers(req, pid), "kill")
    return request.CONTINUE


def _one_process(sup, req, target_index: int, sig_index: int, op: str):
    """tkill, tgkill, rt_(tg)sigqueueinfo: one receiver, named by a tid (or
    pid) in a register, its signal in another."""
    tid, sig = _signed(req.args[target_index]), _signed(req.args[sig_index])
    if sig != 0 and tid > 0:
        judge_receivers(sup, req, [t for t in (_tgid_of(tid),) if t is not None], op)
    return request.CONTINUE


def h_tkill(sup, req):
    return _one_process(sup, req, 0, 1, "tkill")


def h_tgkill(sup, req):
    return _one_process(sup, req, 1, 2, "tgkill")


def h_rt_sigqueueinfo(sup, req):
    return _one_process(sup, req, 0, 1, "rt_sigqueueinfo")


def h_rt_tgsigqueueinfo(sup, req):
    return _one_process(sup, req, 1, 2, "rt_tgsigqueueinfo")


def _pidfd_send_signal(pidfd: int, sig: int, info: bytes | None, flags: int) -> int:
    buf = ctypes.create_string_buffer(info, SIGINFO_SIZE) if info is not None else None
    ctypes.set_errno(0)
    rc = libc._syscall(NR_PIDFD_SEND_SIGNAL, pidfd, sig, buf, ctypes.c_uint(flags))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return 0


def h_pidfd_send_signal(sup, req):
    """Judged and sent on a duplicate of the caller's pidfd: the fd number
    could name another process by the time the kernel looked it up again."""
    if req.tgid == sup.shell_pid or not sup.state_of(req.tgid).confined:
        return request.CONTINUE
    number, sig, flags = _signed(req.args[0]), _signed(req.args[1]), req.args[3] & 0xFFFFFFFF
    if number < 0:
        raise OSError(errno.EBADF, "bad pidfd")
    pidfd = request.their_file(req, number)
    info = req.memory(req.args[2], SIGINFO_SIZE) if req.args[2] else None
    try:
        pid = target.pidfd_target(os.getpid(), pidfd)
    except OSError:
        pid = None  # not a pidfd: the kernel's own error below
    if pid is not None and pid > 0 and sig != 0:
        receivers = _process_group(_own_pgrp(pid)) if flags & PIDFD_SIGNAL_PROCESS_GROUP else [pid]
        judge_receivers(sup, req, receivers, "pidfd_send_signal")
    return _pidfd_send_signal(pidfd, sig, info, flags)


def _owner_receivers(kind: int, pid: int) -> list[int]:
    if pid == 0:
        return []  # no owner: SIGIO goes nowhere
    if kind == F_OWNER_PGRP:
        return _process_group(pid)
    tgid = _tgid_of(pid)
    return [tgid] if tgid is not None else []


def h_fcntl(sup, req):
    """F_SETOWN (a value) and F_SETOWN_EX (a struct in memory) choose who
    gets SIGIO, or any signal F_SETSIG names, when the file is ready."""
    cmd = req.args[1] & 0xFFFFFFFF
    if req.tgid == sup.shell_pid or not sup.state_of(req.tgid).confined:
        return request.CONTINUE
    if cmd != F_SETOWN_EX:  # F_SETOWN: a pid, or a process group as -pgrp
        owner = _signed(req.args[2])
        kind = F_OWNER_PGRP if owner < 0 else F_OWNER_PID
        judge_receivers(sup, req, _owner_receivers(kind, abs(owner)), "fcntl")
        return request.CONTINUE
    fd = _signed(req.args[0])
    if fd < 0:
        raise OSError(errno.EBADF, "bad fd")
    theirs = request.their_file(req, fd)
    owner = FOwnerEx.from_buffer_copy(req.memory(req.args[2], ctypes.sizeof(FOwnerEx)))
    judge_receivers(sup, req, _owner_receivers(owner.type, owner.pid), "fcntl")
    return _fcntl_ptr(theirs, F_SETOWN_EX, owner)


def h_owner_ioctl(sup, req):
    """FIOSETOWN and SIOCSPGRP: F_SETOWN with the pid in memory."""
    if req.tgid == sup.shell_pid or not sup.state_of(req.tgid).confined:
        return request.CONTINUE
    fd = _signed(req.args[0])
    if fd < 0:
        raise OSError(errno.EBADF, "bad fd")
    theirs = request.their_file(req, fd)
    owner = ctypes.c_int.from_buffer_copy(req.memory(req.args[2], ctypes.sizeof(ctypes.c_int))).value
    kind = F_OWNER_PGRP if owner < 0 else F_OWNER_PID
    judge_receivers(sup, req, _owner_receivers(kind, abs(owner)), "ioctl")
    value = ctypes.c_int(owner)
    return libc.ioctl(theirs, req.args[1] & 0xFFFFFFFF, ctypes.addressof(value))


_fcntl = libc._libc.fcntl
_fcntl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]


def _fcntl_ptr(fd: int, cmd: int, struct) -> int:
    ctypes.set_errno(0)
    rc = _fcntl(fd, cmd, ctypes.addressof(struct))
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return rc


OWNER_IOCTLS = (FIOSETOWN, SIOCSPGRP)
