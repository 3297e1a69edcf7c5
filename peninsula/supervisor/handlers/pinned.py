"""Judging another process by a pid, when the answer is CONTINUE.

ptrace and process_vm_writev name their target by pid, and an allowed
request is answered with CONTINUE: the kernel looks that pid up again
when the call runs. A decision read from /proc by pid alone could be made
for one process and then carried out on another that was given the same
pid in between. So the process is pinned first (a pidfd), judged, and the
answer stands only if the pinned process is still running afterwards: a
process that has not exited still owns its pid, so the process judged and
the process at that pid were the same one throughout the decision.
What is left is the kernel's own lookup when the caller runs again after
the answer (tens of microseconds later): a pid freed and taken again in
that window still reaches its new holder (tests/reliability/test_pid_reuse.py).
"""

from __future__ import annotations

import errno
import os
import select

PTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206
PIDFD_THREAD = os.O_EXCL  # a pidfd for one thread (Linux 6.9)


def pin(pid: int) -> int:
    """A pidfd for the process at pid now; ESRCH (the kernel's answer) when
    there is none. ptrace and its kin also take the id of a thread that does
    not lead its process (a debugger attaches to every thread): that thread
    is pinned by itself, and its id is freed when it exits."""
    try:
        return os.pidfd_open(pid)
    except OSError as err:
        # a thread's id: EINVAL, or ENOENT on newer kernels
        if err.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    try:
        return os.pidfd_open(pid, PIDFD_THREAD)
    except OSError as err:
        if err.errno in (errno.ESRCH, errno.EINVAL, errno.ENOENT):
            raise OSError(errno.ESRCH, "no such process") from None
        raise


def running(pidfd: int) -> bool:
    """The pinned process has not exited (a pidfd polls readable once it has)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return not poller.poll(0)


def exited_errno(ptrace_request: int | None) -> int:
    """What the kernel answers for a target that exited during the
    decision: attaching to a zombie is EPERM, everything else ESRCH."""
    return errno.EPERM if ptrace_request in (PTRACE_ATTACH, PTRACE_SEIZE) else errno.ESRCH
