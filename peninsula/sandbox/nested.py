"""The head of a nested `peninsula run` (issue 14): it hands its command to
the supervisor whose filter it runs under (peninsula/supervisor/nesting.py)
instead of installing a listener of its own, which the kernel refuses
(EBUSY). A channel carries the requests: a shell session's control socket
(shell/nested.py) or an outer run's nest socket (sandbox/run_channel.py).

The head stays judged by the caller's policy, as the caller of a run is
outside the run; it writes the report, forwards signals and enforces the
wall-time limit as a child subreaper (kill_tree), like the run supervisor.
Its command runs in a Landlock domain of its own that scopes signals, so it
cannot kill the head to have its orphans judged by the caller's policy.
"""

from __future__ import annotations

import os
import threading
import time

from peninsula.kernel import target


def refusal(box, channel) -> str | None:
    """The options a nested run cannot honour, in one line, or None."""
    opts = box.options
    why = []
    if box.namespaces():
        why.append(f"--unshare-*: {channel.whose} filter is already installed, and a namespace "
                   "made under it would need setns/mounts the supervisor does not judge")
    if box.net_rules() is not None:
        why.append("--allow-connect/--allow-bind: Landlock network rules cover the whole process, "
                   f"and {channel.whose} baseline is already in force")
    if opts.limit_nproc is not None:
        from peninsula.kernel.pidslimit import rlimit_nproc_ignored

        if rlimit_nproc_ignored():
            why.append("--limit-nproc: RLIMIT_NPROC does not bind root (nor CAP_SYS_RESOURCE/CAP_SYS_ADMIN), and the "
                       "pids cgroup that would cannot be made from inside a sandbox")
    if opts.fast:
        why.append(f"--fast: {channel.whose} supervisor judges every write")
    if box.verbose:
        why.append(f"--verbose: the diagnostics are {channel.whose} supervisor's")
    if not why:
        return None
    return f"cannot nest inside {channel.where}: " + "; ".join(why) + f" (run it outside {channel.outside})"


class NestedRun:
    """A run handed to the supervisor it runs under; kill() and wait() as Running.

    channel: ask(request, fds) -> reply or None, check(path) -> reply or
    None, env (what the command needs to nest again), whose/where/outside
    (words for messages)."""

    def __init__(self, box, argv: list[str], channel):
        from peninsula.sandbox.api import SandboxError
        from peninsula.sandbox.launch import Plan, exec_command

        why = refusal(box, channel)
        if why:
            raise SandboxError(why)
        # Tool caches are the caller's business: a nested run narrows the
        # caller's policy and makes no cache of its own (it could not write
        # one outside the caller's roots anyway).
        box.own_caches = False
        pol = box.policy()
        box.check()
        self.plan = plan = Plan(box, list(argv), pol)
        plan.env.update(channel.env)
        self.walltime = plan.walltime
        self.start = time.time()
        self.t0 = time.monotonic()
        self.killed: list[str] = []
        self.finished = threading.Event()
        self.channel = channel
        self._warn_wider(pol, box)
        from peninsula.sandbox.allowed_dirs import create_missing

        try:
            create_missing(box.options.write, pol, lambda line: box.stderr.write(line + "\n"))
        except OSError as err:
            raise SandboxError(f"{err.filename}: allowed as writable but missing, and it cannot be created: "
                               f"{err.strerror}") from None
        from peninsula.kernel import libc
        from peninsula.kernel import landlock

        if landlock.abi_version() < landlock.SCOPING_ABI:
            # Without a signal scope of its own the command could kill this
            # head, and its orphans would be judged by the caller's policy.
            raise SandboxError(f"cannot nest inside {channel.where}: this kernel's Landlock cannot scope signals "
                               f"(needs ABI {landlock.SCOPING_ABI}), so the command could kill the nested run's "
                               f"head and escape to {channel.whose} policy (run it outside {channel.outside})")
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
                    try:
                        # The command and what it starts cannot signal this
                        # head (nor anything else outside the nested run).
                        landlock.scope_signals_self()
                    except (OSError, landlock.BaselineError) as err:
                        os.write(exec_w, f"scope {err}".encode("utf-8", "replace"))
                        os._exit(125)
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
            if box.options.log and self._log_writable(box):
                # Opened here, under this process's own policy: the supervisor only appends to it.
                fds.append(os.open(box.options.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600))
            reply = channel.ask({"op": "nest", "writable": list(pol.writable), "protected": list(pol.protected),
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
            raise SandboxError(reply["error"] if reply else f"{channel.whose} supervisor did not answer")
        os.write(go_w, b"go")
        os.close(go_w)

    def _warn_wider(self, pol, box) -> None:
        """Say which --write roots the caller's confinement forbids: the
        nested run cannot widen it, so writes there will be refused."""
        for root in dict.fromkeys(box.options.write):
            where = os.path.realpath(os.path.expanduser(root))
            answer = self.channel.check(where) or {}
            if answer.get("allow") is False:
                box.stderr.write(f"peninsula: --write {root}: not writable here ({answer.get('reason')}); "
                                 "a nested run cannot widen its caller's confinement, so writes there are refused\n")

    def _log_writable(self, box) -> bool:
        """Whether the caller's confinement lets this run open its --log (a
        devenv task's launcher inside another names the same log). When it
        does not, say so and go on, as for --write: the supervisor above
        still logs every denial of this run in its own log."""
        where = os.path.realpath(os.path.expanduser(box.options.log))
        answer = self.channel.check(where) or {}
        if answer.get("allow") is not False:
            return True
        box.stderr.write(f"peninsula: --log {box.options.log}: not writable here ({answer.get('reason')}); this "
                         f"nested run's denials are logged only by {self.channel.whose} supervisor, in its log\n")
        return False

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
        tally = self.channel.ask({"op": "nest-end", "pid": self.key[0], "start": self.key[1]}, []) or {}
        denials, first = int(tally.get("denials", 0)), list(tally.get("first", []))

        def failed(message: str, code: int):
            return Result("setup failed", code, None, self.start, real, utime, stime, maxrss, denials, first, message)

        if exec_error.startswith(b"rlimit "):
            _, name, value, why = exec_error.decode("utf-8", "replace").split(" ", 3)
            return failed(f"peninsula: the kernel refused --{name.replace('_', '-')} {value}: {why}", EXIT_SETUP)
        if exec_error.startswith(b"scope "):
            return failed("peninsula: cannot scope the nested command's signals: "
                          + exec_error[6:].decode("utf-8", "replace"), EXIT_SETUP)
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
