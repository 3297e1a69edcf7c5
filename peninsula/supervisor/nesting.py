"""Judging a nested `peninsula run` (issue 14): the supervisor's side.

The kernel allows one seccomp notify listener per filter chain, so a run
started under a supervisor's filter (a shell session's, or an outer
`peninsula run`'s) cannot install its own (EBUSY). It does not need to:
that supervisor already sees every trapped call of the run's command. So
the run asks it to judge its command, and everything the command starts,
by Both(the command's current policy, the run's own policy) -- an
intersection, never laxer than the caller.

    peninsula run (head) ── fork ── command (waits for "go")
         │  nest request: the command's pidfd, the run's policy
         v
    supervisor: answers[(command pid, start)] = NestedState(...)

Accepting a nest request from a confined process is safe because it can
only tighten: the supervisor takes the outer side from its own judgement
of the command (state_of, from the command's line), and the command is
named by a pidfd, which cannot be reused, and must be the caller's child.
The caller is named by the kernel (the session: the pidfd taken at
connect; a run: run_nesting.py). The head stays judged by the caller's
policy, as the caller of a run is outside the run; it writes the report,
forwards signals and enforces the wall-time limit as a child subreaper
(sandbox/nested.py).

A supervisor that serves nest requests has: lock, answers, nest_heads,
nests, policies, broker (None without per-command notice streams), fast,
state_of(tgid), policy_for(state) and supervises(pid) (is pid beneath it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import time
from dataclasses import dataclass

from peninsula.policy import engine as policy
from peninsula.kernel import target
from peninsula.policy.timeline import ShellState

MAX_FIRST = 20
MAX_NESTS = 1024  # live nested runs per supervisor: each holds a few fds and a policy


@dataclass(frozen=True)
class NestedState:
    """The state of a nested run's command: the caller's state (outer) and
    the run's own policy (inner); head names the command, for its tally."""

    outer: "ShellState | NestedState"  # or a run's state (run_nesting.RunState)
    inner: policy.Policy
    head: tuple[int, int]

    @property
    def confined(self) -> bool:
        return True

    @property
    def strict(self) -> bool:
        return False

    @property
    def project(self) -> str | None:
        return self.outer.project

    def describe(self) -> str:
        return f"a nested peninsula run, inside: {self.outer.describe()}"


def policy_of(sup, state: NestedState):
    """The policy a nested run's command is judged by (sup.lock held)."""
    pol = sup.policies.get(state)
    if pol is None:
        outer = sup.policy_for(state.outer)
        pol = state.inner if outer is None else policy.Both(outer, state.inner)
        sup.policies[state] = pol
    return pol


# -- the supervisor's side ---------------------------------------------------------


class Nest:
    def __init__(self, caller: tuple[int, int], key: tuple[int, int], log_fd: int | None):
        self.caller = caller
        self.key = key
        self.log_fd = log_fd  # the run's --log, opened by the run itself
        self.denials = 0
        self.first: list[dict] = []

    def close(self) -> None:
        if self.log_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.log_fd)
            self.log_fd = None


def _appendable_file(fd: int) -> bool:
    """A regular file opened for appending: writing JSON lines to it does
    nothing the run, which opened it under its own policy, could not do."""
    import fcntl
    import stat

    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    return (stat.S_ISREG(os.fstat(fd).st_mode) and flags & os.O_APPEND != 0
            and flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR))


def _pidfd_pid(pidfd: int) -> int:
    with open(f"/proc/self/fdinfo/{pidfd}") as handle:
        for line in handle:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    raise ValueError("not a pidfd")


def _private_stream(fd: int) -> int | None:
    """Our own non-blocking open of what the run's stderr names: a confined
    run could otherwise hand us a pipe it never drains and stall the
    supervisor on a notice. Only an fd the run holds open for writing is
    opened again: reopening a read-only one would give the supervisor a
    write the run was never allowed (its ~/.bashrc, say). None (notices go
    to the supervisor's own stream) when refused or not reopenable (a socket)."""
    import fcntl
    import stat

    flags = os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE not in (os.O_WRONLY, os.O_RDWR):
            return None
        if stat.S_ISREG(os.fstat(fd).st_mode):
            flags |= os.O_APPEND
        return os.open(f"/proc/self/fd/{fd}", flags)
    except OSError:
        return None


def answer_nest(sup, caller: int, request: dict, fds: list[int]) -> dict:
    """Judge the caller's child by Both(its current policy, the run's own)."""
    if len(fds) not in (2, 3):
        return {"error": "nest: malformed request"}
    pidfd, stderr_fd = fds[:2]
    try:
        log_fd = fds[2] if len(fds) == 3 else None
        if log_fd is not None and not _appendable_file(log_fd):
            return {"error": "nest: the log is not a regular file opened for appending"}
        writable, protected = request.get("writable"), request.get("protected")
        if not all(isinstance(v, list) and all(isinstance(p, str) and p.startswith("/") and "\0" not in p for p in v)
                   for v in (writable, protected)):
            return {"error": "nest: malformed policy"}
        inner = policy.Policy(writable=tuple(writable), protected=tuple(protected),
                              hardlinked_writes=request.get("hardlinked_writes") is True)
        command = _pidfd_pid(pidfd)
        key = (command, target.start_time(command))
        caller_key = (caller, target.start_time(caller))
        # Still the process the pidfd names (so key is not a reused pid's),
        # and the caller's child.
        signal.pidfd_send_signal(pidfd, 0)
        if target.parent_of(command) != caller:
            return {"error": "nest: the command is not the caller's child"}
        if not sup.supervises(command):
            return {"error": "nest: the caller is not under this supervisor"}
        with sup.lock:
            nests = sup.nests
            _prune(sup, nests)
            if len(nests) >= MAX_NESTS:
                return {"error": f"nest: {MAX_NESTS} nested runs are live here already"}
            if caller_key in sup.nest_heads:
                return {"error": "nest: one nested command per peninsula run"}
            outer = sup.state_of(command)
            state = NestedState(outer, inner, key)
            sup.answers[key] = state
            sup.nest_heads[caller_key] = state
            if sup.fast is not None:
                sup.fast.forget(command)
            nests[key] = Nest(caller_key, key, None if log_fd is None else os.dup(log_fd))
        # Without a broker (a run) notices go to the supervisor's stream, and
        # nothing is opened: nothing that could block.
        stream = _private_stream(stderr_fd) if sup.broker is not None else None
        if stream is not None:
            with sup.broker.streams_lock:
                sup.broker.streams[command] = stream  # its notices go to the run's stderr
        return {"state": state.describe(), "outer": outer.describe()}
    except (OSError, ValueError, IndexError) as err:
        return {"error": f"nest: the command vanished ({err})"}
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def answer_nest_end(sup, caller: int, request: dict) -> dict:
    """The denials of a finished nested run, for its report (its caller only)."""
    try:
        key = (int(request["pid"]), int(request["start"]))
        caller_key = (caller, target.start_time(caller))
    except (KeyError, TypeError, ValueError, OSError, IndexError):
        return {"error": "nest-end: malformed request"}
    with sup.lock:
        nest = sup.nests.get(key)
        if nest is None or nest.caller != caller_key:
            return {"error": "nest-end: no such nested run of yours"}
        del sup.nests[key]
        sup.nest_heads.pop(caller_key, None)
    nest.close()
    _drop_stream(sup, key[0])
    return {"denials": nest.denials, "first": nest.first}


def _drop_stream(sup, pid: int) -> None:
    if sup.broker is not None:
        with sup.broker.streams_lock, contextlib.suppress(KeyError, OSError):
            os.close(sup.broker.streams.pop(pid))


def _prune(sup, nests: dict) -> None:
    """Forget nests whose head died without asking for its tally (its
    command's tree keeps its answers: they are cached per process)."""
    for key, nest in list(nests.items()):
        try:
            alive = target.start_time(nest.caller[0]) == nest.caller[1]
        except (OSError, ValueError, IndexError):
            alive = False
        if not alive:
            nests.pop(key).close()
            sup.nest_heads.pop(nest.caller, None)


def tally(sup, tgid: int, denied) -> None:
    """Count a denial for every nested run the process is in (the supervisor's notices)."""
    nests = sup.nests
    if not nests:
        return
    with sup.lock:
        state = sup.state_of(tgid)
        while isinstance(state, NestedState):
            nest = nests.get(state.head)
            if nest is not None:
                nest.denials += 1
                entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": tgid, "comm": target.comm(tgid),
                         "op": denied.op, "path": denied.path, "reason": denied.reason,
                         "errno": errno.errorcode.get(denied.errno, str(denied.errno))}
                if len(nest.first) < MAX_FIRST:
                    nest.first.append(entry)
                if nest.log_fd is not None:
                    with contextlib.suppress(OSError):
                        os.write(nest.log_fd, (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "surrogateescape"))
            state = state.outer
