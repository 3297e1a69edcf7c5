"""Calls that reach another process: seccomp (a listener of its own), ptrace, process_vm_writev, pidfd_getfd,
prlimit of another process.
"""

from __future__ import annotations

import errno
import os
from peninsula.kernel import libc
from peninsula.supervisor.handlers import pinned
from peninsula.policy import engine as policy
from peninsula.kernel import target
from peninsula.supervisor.handlers.request import CONTINUE, Denied, Fd, PTRACE_TRACEME, signed_int, their_file


def _descendant(req, pid, op, ptrace_request=None):
    if pid <= 0:
        raise OSError(errno.ESRCH, "no such process")
    # Judged on the process pinned by a pidfd, never on whatever holds the
    # pid later (see pinned).
    pidfd = req.keep(pinned.pin(pid))
    decision = policy.decide_trace(req.tgid, target.ancestry(pid))
    if not decision.allow:
        raise Denied(errno.EPERM, f"pid {pid} ({target.comm(pid)})", decision.reason, op)
    _as_strict(req, pid, op)
    if not pinned.running(pidfd):
        raise OSError(pinned.exited_errno(ptrace_request), "the target exited during the decision")
    req.validate()
    return CONTINUE


def _as_strict(req, pid: int, op: str) -> None:
    """In a shell session, a descendant is not always confined as strictly
    as its parent: one that ran before its parent walked into a project
    was judged then, by its line, and stays laxer. Reaching into it would
    make it act for the caller, so only one confined at least as strictly
    may be reached, as for signals (lineage.py). (A run confines every
    process alike.)"""
    if hasattr(req.sup, "shell_pid"):
        from peninsula.supervisor.handlers import lineage

        lineage.judge_receivers(req.sup, req, [pid], op, "reach into")


def h_seccomp(req):
    """A second notify listener asked for (only that is trapped): the kernel
    answers EBUSY, since one listener per filter chain is allowed; the
    flags are registers, so letting the kernel answer decides nothing."""
    tell_listener_refused(req)
    return CONTINUE


def h_ptrace(req):
    if req.args[0] == PTRACE_TRACEME:
        # The parent becomes the tracer. When that parent is peninsula (the
        # supervisor, or a session's zygote), nobody would ever resume the
        # traced process after its next signal: the run would hang.
        if target.parent_of(req.tgid) in req.sup.own_pids:
            raise Denied(errno.EPERM, f"pid {req.tgid} ({target.comm(req.tgid)})",
                         "its parent is peninsula, which is not a debugger", "ptrace")
        return CONTINUE
    return _descendant(req, signed_int(req.args[1]), "ptrace", req.args[0])


def h_process_vm_writev(req):
    return _descendant(req, signed_int(req.args[0]), "process_vm_writev")


def h_prlimit64(req):
    """Setting another process's resource limits (the filter sends only a
    pid other than 0 with a new limit): RLIMIT_CPU kills it, RLIMIT_NOFILE
    cripples it, and neither is a signal, which Landlock scopes. A nested
    command could kill its run's head this way and hand its orphans to the
    laxer state above; any confined process could starve its supervisor.
    Its own limits, and a descendant's, are its business."""
    pid = signed_int(req.args[0])
    if pid < 0 or pid == req.tgid or os.path.exists(f"/proc/{req.tgid}/task/{pid}"):
        return CONTINUE  # the kernel's own answer (ESRCH for a negative pid), or itself
    return _descendant(req, pid, "prlimit")


def h_pidfd_getfd(req):
    """Done here, on a duplicate of the target's pidfd: answering CONTINUE
    after reading which process its fd number names would let another
    thread put a different pidfd under that number in between."""
    if req.args[2] & 0xFFFFFFFF:
        raise OSError(errno.EINVAL, "flags must be 0")
    number, wanted = signed_int(req.args[0]), signed_int(req.args[1])
    if number < 0:
        raise OSError(errno.EBADF, "bad pidfd")
    pidfd = their_file(req, number)
    pid = target.pidfd_target(os.getpid(), pidfd)
    if pid <= 0:
        raise OSError(errno.ESRCH, "the process has exited")
    decision = policy.decide_trace(req.tgid, target.ancestry(pid))
    if not decision.allow:
        raise Denied(errno.EPERM, f"pid {pid} ({target.comm(pid)})", decision.reason, "pidfd_getfd")
    _as_strict(req, pid, "pidfd_getfd")
    return Fd(libc.pidfd_getfd(pidfd, wanted), True)


def tell_listener_refused(req) -> None:
    """Say, once per process, why a notify sandbox inside a session or a run fails."""
    sup = req.sup
    whose = "this supervised shell's" if hasattr(sup, "shell_pid") else "this peninsula run's"
    told = sup.__dict__.setdefault("listeners_told", set())
    if req.tgid in told:
        return
    if len(told) > 1024:
        told.clear()
    told.add(req.tgid)
    sup.notices.say_plain(
        f"peninsula: {target.comm(req.tgid)} (pid {req.tgid}) asked for a seccomp notify listener of its own (a notify "
        f"sandbox such as sandlock or nono); the kernel allows one per filter chain and {whose} comes "
        "first, so it gets EBUSY. `peninsula run` nests here instead; see `peninsula doctor`")
