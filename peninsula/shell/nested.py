"""`peninsula run` inside a supervised shell session (issue 14).

The kernel allows one seccomp notify listener per filter chain, so a run
started under the session's filter cannot install its own (EBUSY). It does
not need to: the session's supervisor already sees every trapped call of
the run's command. So the run asks that supervisor to judge its command,
and everything the command starts, by Both(the command's current policy,
the run's own policy) -- an intersection, never laxer than the caller.

    peninsula run (head) ── fork ── command (waits for "go")
         │  nest request: the command's pidfd, the run's policy
         v
    session supervisor: answers[(command pid, start)] = NestedState(...)

Accepting a nest request from a confined process is safe because it can
only tighten: the supervisor takes the outer side from its own judgement
of the command (state_of, from the command's line), and the command is
named by a pidfd, which cannot be reused, and must be the caller's child.
The head stays judged by the caller's policy, as the caller of a run is
outside the run; it writes the report, forwards signals and enforces the
wall-time limit as a child subreaper (kill_tree), like the run supervisor.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass

from peninsula.policy import engine as policy
from peninsula.kernel import target
from peninsula.policy.timeline import ShellState

MAX_FIRST = 20
MAX_NESTS = 1024  # live nested runs per session: each holds a few fds and a policy


@dataclass(frozen=True)
class NestedState:
    """The state of a nested run's command: the caller's state (outer) and
    the run's own policy (inner); head names the command, for its tally."""

    outer: "ShellState | NestedState"
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
    """The policy the session judges a nested run's command by (sup.lock held)."""
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
    to the session's terminal) when refused or not reopenable (a socket)."""
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
    from peninsula.shell.callers import descends_from

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
        if not descends_from(command, {sup.shell_pid, *sup.own_pids}):
            return {"error": "nest: the caller is not under this session's supervisor"}
        with sup.lock:
            nests = sup.nests
            _prune(sup, nests)
            if len(nests) >= MAX_NESTS:
                return {"error": f"nest: {MAX_NESTS} nested runs are live in this session already"}
            if caller_key in sup.nest_heads:
                return {"error": "nest: one nested command per peninsula run"}
            outer = sup.state_of(command)
            state = NestedState(outer, inner, key)
            sup.answers[key] = state
            sup.nest_heads[caller_key] = state
            if sup.fast is not None:
                sup.fast.forget(command)
            nests[key] = Nest(caller_key, key, None if log_fd is None else os.dup(log_fd))
        stream = _private_stream(stderr_fd)
        if sup.broker is not None and stream is not None:
            with sup.broker.streams_lock:
                sup.broker.streams[command] = stream  # its notices go to the run's stderr
        elif stream is not None:
            os.close(stream)
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
    """Count a denial for every nested run the process is in (session.py)."""
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


# -- the run's side ------------------------------------------------------------------


def session_for_nesting() -> str | None:
    """The session directory when this process runs under a session's
    filter (so a run of its own would get EBUSY), else None."""
    from peninsula.shell.environ import ENV_SESSION_DIR

    session_dir = os.environ.get(ENV_SESSION_DIR)
    if not session_dir or not os.path.exists(os.path.join(session_dir, "control.sock")):
        return None
    try:
        with open("/proc/self/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Seccomp_filters:"):
                    return session_dir if int(line.split()[1]) > 0 else None
    except (OSError, ValueError):
        pass
    return None


def refusal(box) -> str | None:
    """The options a nested run cannot honour, in one line, or None."""
    opts = box.options
    why = []
    if box.namespaces():
        why.append("--unshare-*: the session's filter is already installed, and a namespace "
                   "made under it would need setns/mounts the supervisor does not judge")
    if box.net_rules() is not None:
        why.append("--allow-connect/--allow-bind: Landlock network rules cover the whole process, "
                   "and the session's baseline is already in force")
    if opts.fast:
        why.append("--fast: the session's supervisor judges every write")
    if box.verbose:
        why.append("--verbose: the diagnostics are the session supervisor's")
    if not why:
        return None
    return "cannot nest inside this supervised session: " + "; ".join(why) + " (run it outside the session)"


class NestedRun:
    """A run handed to the session's supervisor; kill() and wait() as Running."""

    def __init__(self, box, argv: list[str], session_dir: str):
        from peninsula.sandbox.api import SandboxError
        from peninsula.sandbox.launch import Plan, exec_command

        why = refusal(box)
        if why:
            raise SandboxError(why)
        # Tool caches are the session's business: a nested run narrows the
        # caller's policy and makes no cache of its own (it could not write
        # one outside the caller's roots anyway).
        box.own_caches = False
        pol = box.policy()
        box.check()
        self.plan = plan = Plan(box, list(argv), pol)
        self.walltime = plan.walltime
        self.start = time.time()
        self.t0 = time.monotonic()
        self.killed: list[str] = []
        self.finished = threading.Event()
        self.sock_path = os.path.join(session_dir, "control.sock")
        self._warn_wider(pol, box)
        from peninsula.sandbox.allowed_dirs import create_missing

        try:
            create_missing(box.options.write, pol, lambda line: box.stderr.write(line + "\n"))
        except OSError as err:
            raise SandboxError(f"{err.filename}: allowed as writable but missing, and it cannot be created: "
                               f"{err.strerror}") from None
        from peninsula.kernel import libc

        libc.prctl_set_child_subreaper()  # orphans stay ours, for the wall-time limit
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
        child = os.fork()
        if child == 0:
            try:
                os.close(go_w)
                os.close(exec_r)
                if os.read(go_r, 2) == b"go":
                    os.chdir(plan.cwd)
                    exec_command(plan, exec_w)
            finally:
                os._exit(125)
        os.close(go_r)
        os.close(exec_w)
        self.child = child
        self.exec_r = exec_r
        self.key = (child, target.start_time(child))
        pidfd = os.pidfd_open(child)
        notices = os.open(os.devnull, os.O_WRONLY) if box.quiet else os.dup(2)
        fds = [pidfd, notices]
        try:
            if box.options.log:
                # Opened here, under this process's own policy: the supervisor only appends to it.
                fds.append(os.open(box.options.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600))
            reply = self._ask({"op": "nest", "writable": list(pol.writable), "protected": list(pol.protected),
                               "hardlinked_writes": pol.hardlinked_writes}, fds)
        except OSError as err:
            reply = {"error": f"cannot open the log {box.options.log}: {err.strerror}"}
        finally:
            for fd in fds:
                os.close(fd)
        if reply is None or "error" in reply:
            os.close(go_w)
            os.close(exec_r)
            os.waitpid(child, 0)
            raise SandboxError(reply["error"] if reply else "the session's supervisor did not answer")
        os.write(go_w, b"go")
        os.close(go_w)

    def _ask(self, request: dict, fds: list[int]) -> dict | None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            try:
                conn.settimeout(10)
                conn.connect(self.sock_path)
                socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], fds)
                data = conn.makefile("rb").readline()
            except OSError:
                return None
        return json.loads(data) if data else None

    def _warn_wider(self, pol, box) -> None:
        """Say which --write roots the caller's confinement forbids: the
        nested run cannot widen it, so writes there will be refused."""
        from peninsula.shell.control import ask

        for root in dict.fromkeys(box.options.write):
            where = os.path.realpath(os.path.expanduser(root))
            answer = ask({"op": "check", "path": where}) or {}
            if answer.get("allow") is False:
                box.stderr.write(f"peninsula: --write {root}: not writable here ({answer.get('reason')}); "
                                 "a nested run cannot widen its caller's confinement, so writes there are refused\n")

    def kill(self) -> None:
        from peninsula.sandbox.launch import kill_tree

        if not self.finished.is_set():
            self.killed.append("killed")
            kill_tree(os.getpid())

    def _watchdog(self) -> None:
        from peninsula.sandbox.launch import kill_tree

        if self.walltime is None or self.finished.wait(self.walltime):
            return
        self.killed.append("timed out")
        kill_tree(os.getpid())

    def wait(self):
        from peninsula.sandbox.report import EXIT_NOEXEC, EXIT_NOTFOUND, EXIT_SETUP
        from peninsula.sandbox.api import Result

        threading.Thread(target=self._watchdog, daemon=True).start()
        status, utime, stime, maxrss = 0, 0.0, 0.0, 0
        while True:  # every descendant, as the run supervisor serves until the last one is gone
            try:
                pid, got, usage = os.wait4(-1, 0)
            except ChildProcessError:
                break
            utime, stime = utime + usage.ru_utime, stime + usage.ru_stime
            maxrss = max(maxrss, usage.ru_maxrss)
            if pid == self.child:
                status = got
        self.finished.set()
        real = time.monotonic() - self.t0
        exec_error = os.read(self.exec_r, 4096)
        os.close(self.exec_r)
        tally = self._ask({"op": "nest-end", "pid": self.key[0], "start": self.key[1]}, []) or {}
        denials, first = int(tally.get("denials", 0)), list(tally.get("first", []))

        def failed(message: str, code: int):
            return Result("setup failed", code, None, self.start, real, utime, stime, maxrss, denials, first, message)

        if exec_error.startswith(b"rlimit "):
            _, name, value, why = exec_error.decode("utf-8", "replace").split(" ", 3)
            return failed(f"peninsula: the kernel refused --{name.replace('_', '-')} {value}: {why}", EXIT_SETUP)
        if exec_error and not self.killed:
            err = int(exec_error.split(b" ", 1)[0])
            import errno

            return failed(f"peninsula: cannot run {self.plan.argv[0]}: {os.strerror(err)}",
                          EXIT_NOTFOUND if err == errno.ENOENT else EXIT_NOEXEC)
        message = None
        if os.WIFSIGNALED(status):
            state, code, sig = "signaled", None, os.WTERMSIG(status)
        else:
            code, sig = os.WEXITSTATUS(status), None
            state = "ok" if code == 0 else "exited nonzero"
        if self.killed and self.killed[0] == "timed out":
            state = "timed out"
            message = (f"peninsula: wall-time limit of {self.walltime:g}s reached; the command and every "
                       "process it started were killed")
        elif self.killed:
            message = "peninsula: killed on request, with every process the command started"
        return Result(state, code, sig, self.start, real, utime, stime, maxrss, denials, first, message)
