"""The launcher: fork the supervisor and the command, make the namespaces, restrict, install the filter, exec.

Sandbox.start (api.py) hands it a Plan; nothing here decides policy.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import select
import signal
import socket
import threading
import time
from dataclasses import asdict
from peninsula.kernel import landlock as baseline
from peninsula.kernel import libc
from peninsula.policy import engine as policy
from peninsula.kernel import target
from peninsula.sandbox.report import EXIT_NOEXEC, EXIT_NOTFOUND, EXIT_SETUP, Result, SandboxError


CLONE_NEWNS = 0x00020000


CLONE_NEWUTS = 0x04000000


CLONE_NEWIPC = 0x08000000


CLONE_NEWUSER = 0x10000000


CLONE_NEWPID = 0x20000000


CLONE_NEWNET = 0x40000000


NS_FLAGS = {"user": CLONE_NEWUSER, "mnt": CLONE_NEWNS, "net": CLONE_NEWNET, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS, "pid": CLONE_NEWPID}


# setns order: the user namespace first (it grants the capabilities the
# others need), the pid namespace last (it only affects children).
NS_ORDER = ("user", "mnt", "net", "ipc", "uts", "pid")


_libc = ctypes.CDLL(None, use_errno=True)


class Plan:
    """Everything the supervisor and command processes need, computed
    in the caller (where errors can still be raised as SandboxError)."""

    def __init__(self, box, argv: list[str], pol: policy.Policy):  # box: the Sandbox (api.py) being started
        self.box = box
        self.argv = argv
        self.policy = pol
        self.roots = box.baseline_roots(pol)
        self.kernel_judges_names = box.options.fast and policy.landlock_expressible(pol)
        if box.options.fast and not self.kernel_judges_names:
            box.stderr.write("peninsula: --fast not applied: a protected path lies inside or around a writable "
                             "root, which only the supervisor can judge\n")
        self.env = box.command_env()
        self.net = box.net_rules()
        self.namespaces = box.namespaces()
        self.hostname = box.options.hostname
        self.limits = box.limits()
        self.walltime = box.options.limit_walltime
        self.cwd = box.options.workdir or os.getcwd()
        self.pids_procs_fd: int | None = None  # the pids cgroup's cgroup.procs (root's --limit-nproc)


def read_line(fd: int) -> bytes:
    """Read one newline-terminated message (or up to EOF), then close fd."""
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    return data


def _live_children_map() -> dict[int, list[int]]:
    """parent pid -> pids of its living (non-zombie) children, from /proc."""
    children: dict[int, list[int]] = {}
    for pid, fields in target.proc_stats():
        if fields[0] in (b"Z", b"X"):
            continue
        children.setdefault(int(fields[1]), []).append(pid)
    return children


def descendants(pid: int) -> list[int]:
    """Living descendants of pid (pid itself excluded), nearest first."""
    children = _live_children_map()
    out, queue = [], list(children.get(pid, ()))
    while queue:
        p = queue.pop(0)
        out.append(p)
        queue.extend(children.get(p, ()))
    return out


def kill_tree(pid: int, deadline: float = 10.0) -> bool:
    """SIGKILL every descendant of pid until none is left. pid must be a
    child subreaper, so orphans stay in its tree. True when it is empty."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        victims = descendants(pid)
        if not victims:
            return True
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    return not descendants(pid)


def _unshare_message(err: int, kinds: tuple[str, ...]) -> str:
    what = ", ".join(k for k in kinds if k != "user") or "namespaces"
    if err == errno.EPERM and "user" in kinds:
        return (
            f"cannot create the requested namespaces ({what}): this kernel refuses unprivileged user namespaces "
            "(EPERM; see sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, "
            "kernel.apparmor_restrict_unprivileged_userns, or a container that forbids them)"
        )
    if err == errno.ENOSPC:
        return f"cannot create the requested namespaces ({what}): the per-user namespace limit is reached (ENOSPC; sysctl user.max_*_namespaces)"
    if err == errno.EINVAL:
        return f"cannot create the requested namespaces ({what}): this kernel does not support them (EINVAL)"
    return f"cannot create the requested namespaces ({what}): {os.strerror(err)}"


def _bring_up_loopback() -> None:
    import fcntl
    import struct

    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP, IFF_RUNNING = 0x8913, 0x8914, 0x1, 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP | IFF_RUNNING))


def _raise_errno(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _holder_main(kinds: tuple[str, ...], hostname: str | None, ready_w: int, go_r: int) -> None:
    """In the namespace holder (forked before the supervisor restricts
    itself): create the namespaces, then report and wait. With a pid
    namespace, its first child mounts the new /proc and stays as pid 1."""
    code = 1
    try:
        # Hold nothing of the caller's: a pipe held open here would keep a
        # reader of the command's output waiting after the command is done.
        keep = {ready_w, go_r}
        for fd in range(0, 1024):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        supervisor = os.getppid()
        watch = os.pidfd_open(supervisor) if "pid" in kinds else -1
        uid, gid = os.getuid(), os.getgid()
        flags = 0
        for kind in kinds:
            flags |= NS_FLAGS[kind]
        if _libc.unshare(flags) != 0:
            raise _SetupFailure(_unshare_message(ctypes.get_errno(), kinds))
        if "user" in kinds:
            # Map only our own ids: files created inside belong to the real
            # user, and nothing inside can become root of the host's files.
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
                with open(f"/proc/self/{name}", "w") as handle:
                    handle.write(text)
        if "mnt" in kinds:
            MS_REC, MS_SLAVE = 0x4000, 0x80000
            # Nothing mounted inside may propagate back to the host.
            if _libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None) != 0:
                _raise_errno("cannot make the mount namespace a slave")
        if "net" in kinds:
            _bring_up_loopback()
        if "uts" in kinds and hostname is not None:
            encoded = hostname.encode()
            if _libc.sethostname(encoded, len(encoded)) != 0:
                _raise_errno("cannot set the host name")
        holder = os.getpid()
        if "pid" in kinds:
            r, w = os.pipe()
            holder = os.fork()
            if holder == 0:
                os.close(r)
                _pid_init_main(w, watch)
            os.close(w)
            answer = os.read(r, 4096)
            os.close(r)
            if answer != b"ok":
                raise _SetupFailure(answer.decode("utf-8", "replace") or "the pid namespace's init died")
        os.write(ready_w, f"ok {holder}\n".encode())
        code = 0
        while os.read(go_r, 16):  # until the supervisor holds our namespaces
            pass
    except _SetupFailure as err:
        os.write(ready_w, f"error {err}\n".encode())
    except OSError as err:
        os.write(ready_w, f"error cannot set up the namespaces: {err}\n".encode())
    except BaseException as err:  # never return into the supervisor's code
        os.write(ready_w, f"error cannot set up the namespaces: {err!r}\n".encode())
    finally:
        os._exit(code)


class _SetupFailure(Exception):
    pass


def _pid_init_main(ready_w: int, watch: int) -> None:
    """pid 1 of the new pid namespace: mount its /proc, then reap orphans
    until the supervisor kills us (taking the namespace with us) or dies."""
    try:
        PR_SET_NAME = 15
        _libc.prctl(PR_SET_NAME, b"peninsula-init", 0, 0, 0)
        MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
        if _libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) != 0:
            err = ctypes.get_errno()
            os.write(ready_w, f"cannot mount /proc for the new pid namespace: {os.strerror(err)}".encode())
            os._exit(1)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        os.write(ready_w, b"ok")
        os.close(ready_w)
        poller = select.poll()
        poller.register(watch, select.POLLIN)
        while True:
            try:
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                pass
            if poller.poll(0):
                os._exit(0)  # the supervisor is gone: end the namespace
            signal.sigtimedwait({signal.SIGCHLD}, 1.0)
    finally:
        os._exit(1)


def _make_namespaces(kinds: tuple[str, ...], hostname: str | None) -> tuple[int | None, dict[str, int]]:
    """Create the namespaces in a holder process; return the pid of the
    pid namespace's init (None without one) and an fd for each namespace."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        _holder_main(kinds, hostname, ready_w, go_r)
    os.close(ready_w)
    os.close(go_r)
    answer = read_line(ready_r)
    text = answer.decode("utf-8", "replace").strip()
    fds: dict[str, int] = {}
    try:
        if not text.startswith("ok "):
            raise SandboxError(text.removeprefix("error ") or "the namespace holder died")
        holder = int(text.split()[1])
        for kind in kinds:
            fds[kind] = os.open(f"/proc/{holder}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        os.close(go_w)
        os.waitpid(pid, 0)
        raise
    os.close(go_w)
    os.waitpid(pid, 0)
    return (holder if "pid" in kinds else None), fds


def _join_namespaces(fds: dict[str, int]) -> None:
    for kind in NS_ORDER:
        if kind in fds:
            if _libc.setns(fds[kind], NS_FLAGS[kind]) != 0:
                _raise_errno(f"cannot join the new {kind} namespace")
            os.close(fds[kind])


class _Reaper:
    """Reaps every child of the supervisor (it is a subreaper): the command
    for its status, orphans for their resource usage."""

    def __init__(self, child: int, holder: int | None):
        self.child = child
        self.holder = holder
        self.status: int | None = None
        self.usage = None
        self.utime = self.stime = 0.0
        self.maxrss = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, 0)
            except ChildProcessError:
                return
            self.utime += usage.ru_utime
            self.stime += usage.ru_stime
            self.maxrss = max(self.maxrss, usage.ru_maxrss)
            if pid == self.child:
                self.status = status
                if self.holder is not None:
                    # The command is done: end its pid namespace (and any
                    # daemon left inside), as bubblewrap does.
                    _kill_quietly(self.holder)


def _kill_quietly(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def supervisor_main(plan: Plan, denial_log, result_w, info_w, stderr_fd) -> int:
    """In the supervisor process: restrict ourselves, start the command, serve."""
    box, argv = plan.box, plan.argv
    # Ctrl-C and Ctrl-\ are for the command; we stop when it is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    kill_request = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: kill_request.set())
    libc.prctl_set_child_subreaper()
    t0 = time.monotonic()
    start = time.time()
    holder = None

    def setup_failed(message: str, code: int = EXIT_SETUP) -> int:
        _kill_quietly(holder)
        result = Result("setup failed", code, None, start, time.monotonic() - t0, 0.0, 0.0, 0, 0, [], message)
        os.write(result_w, json.dumps(asdict(result)).encode())
        return 0

    def say_pid(pid: int) -> None:
        os.write(info_w, f"{pid}\n".encode())
        os.close(info_w)

    ns_fds: dict[str, int] = {}
    if plan.namespaces:
        try:
            holder, ns_fds = _make_namespaces(plan.namespaces, plan.hostname)
        except SandboxError as err:
            say_pid(0)
            return setup_failed(f"peninsula: {err}")
    from peninsula.supervisor.filtercache import filter_bpf
    from peninsula.kernel.seccomp import FilterProgram

    # Before the baseline: the filter cache lives in ~/.cache, which the
    # supervisor may not write once restricted (every start would then
    # rebuild the filter with libseccomp).
    try:
        program = FilterProgram(filter_bpf(kernel_judges_names=plan.kernel_judges_names))
    except OSError as err:
        say_pid(0)
        return setup_failed(f"peninsula: seccomp user-notify is not available: cannot build the filter ({err})")
    try:
        baseline.restrict_self_if_available(plan.roots, scoped=False)
    except Exception as err:
        say_pid(0)
        return setup_failed(f"peninsula: cannot apply the Landlock baseline: {err}")
    from peninsula.supervisor.handlers.allowlist import AllowList, shipped_allowlist, shipped_places, user_allowlist

    sockets_allowed = AllowList(shipped_allowlist() + user_allowlist(box.options.allow_socket, "--allow-socket"), shipped_places())
    # (found before the command can rename anything)
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    from peninsula.supervisor.run_nesting import ENV_NEST_FD, NestingRunSupervisor, channel_pair

    nest_sock, nest_theirs = channel_pair()  # for a `peninsula run` inside this one (run_nesting.py)
    exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        parent_sock.close()
        nest_sock.close()
        nest_theirs.set_inheritable(True)
        plan.env[ENV_NEST_FD] = str(nest_theirs.fileno())
        os.close(exec_r)
        for fd in (result_w, info_w, *(denial_log.fds() if denial_log is not None else ())):
            os.close(fd)
        _command_main(plan, program, child_sock, exec_w, ns_fds)
    for fd in ns_fds.values():
        os.close(fd)
    command_key = (child, target.start_time(child))  # before the reaper can reap it
    child_sock.close()
    nest_theirs.close()
    os.close(exec_w)
    say_pid(child)
    try:
        msg, fds, _, _ = socket.recv_fds(parent_sock, 4096, 1)
    except OSError as err:
        msg, fds = f"error cannot receive the listener: {err}".encode(), []
    parent_sock.close()
    if not fds:
        os.waitpid(child, 0)
        text = msg.decode("utf-8", "replace")
        return setup_failed(f"peninsula: {text.removeprefix('error ')}")
    listener_fd = fds[0]
    reaper = _Reaper(child, holder)
    killed: list[str] = []
    finished = threading.Event()

    def watchdog() -> None:
        requested = kill_request.wait(plan.walltime)
        if finished.is_set():
            return
        killed.append("killed" if requested else "timed out")
        kill_tree(os.getpid())

    threading.Thread(target=watchdog, daemon=True).start()
    stream = os.fdopen(os.dup(stderr_fd), "w", buffering=1, errors="replace")
    notices = _notices(stream, denial_log, box.quiet)
    sup = NestingRunSupervisor(listener_fd, plan.policy, notices, box.verbose, sockets_allowed, command_key, nest_sock,
                               plan.kernel_judges_names)
    notices.sup = sup
    sup.tcp_connect_ports = plan.net.connect if plan.net is not None else None
    sup.tcp_bind_ports = plan.net.bind if plan.net is not None else None
    sup.socket_hint = "--allow-socket {path}"
    from peninsula.supervisor.handlers.allowlist import shipped_ports

    sup.loopback_ports = shipped_ports(box.options.allow_loopback, "--allow-loopback")
    sup.loopback_hint = "--allow-loopback {port}"
    sup.own_netns = box.options.unshare_net  # its sockets live in the run's own namespace (handlers/loopback.py)
    sup.serve()
    nest_sock.close()
    reaper.thread.join()
    finished.set()
    kill_request.set()
    exec_error = os.read(exec_r, 4096)
    os.close(exec_r)
    status = reaper.status if reaper.status is not None else 0
    real = time.monotonic() - t0
    if exec_error.startswith(b"rlimit "):
        _, name, value, why = exec_error.decode("utf-8", "replace").split(" ", 3)
        return setup_failed(f"peninsula: the kernel refused --{name.replace('_', '-')} {value}: {why}")
    if exec_error and not killed:
        err = int(exec_error.split(b" ", 1)[0])
        code = EXIT_NOTFOUND if err == errno.ENOENT else EXIT_NOEXEC
        return setup_failed(f"peninsula: cannot run {argv[0]}: {os.strerror(err)}", code)
    message = None
    if os.WIFSIGNALED(status):
        state, code, sig = "signaled", None, os.WTERMSIG(status)
    else:
        code, sig = os.WEXITSTATUS(status), None
        state = "ok" if code == 0 else "exited nonzero"
    if killed and killed[0] == "timed out":
        state = "timed out"
        message = f"peninsula: wall-time limit of {plan.walltime:g}s reached; the command and every process it started were killed"
    elif killed:
        message = "peninsula: killed on request, with every process the command started"
    result = Result(state, code, sig, start, real, reaper.utime, reaper.stime, reaper.maxrss,
                    notices.count, notices.first, message)
    os.write(result_w, json.dumps(asdict(result)).encode())
    return 0


def _notices(stream, denial_log, quiet):
    """Denial notices that also name a shipped profile when one would
    allow the denied path (the user decides; caches are shared)."""
    from peninsula.supervisor.loop import DenialNotices

    class Notices(DenialNotices):
        _hints = None
        sup = None  # the supervisor, for a nested run's tally

        def record(self, tid, tgid, denied):
            super().record(tid, tgid, denied)
            if self.sup is not None:
                from peninsula.supervisor.nesting import tally

                tally(self.sup, tgid, denied)  # for a nested run's report

        def _line(self, name, pid, denied):
            line = super()._line(name, pid, denied)
            if "outside" not in denied.reason:
                return line
            from peninsula.supervisor.hints import profile_for

            profile = profile_for(denied.path)
            if profile:
                line += f" (or --profile {profile}: shared between projects, see `peninsula profiles`)"
            return line

    return Notices(stream, denial_log, quiet)


def _command_main(plan: Plan, program, sock, exec_w, ns_fds: dict[str, int]) -> None:
    """In the command process: join the namespaces, confine ourselves,
    hand the listener up, set the limits, exec."""
    code = EXIT_SETUP
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        if ns_fds:
            _join_namespaces(ns_fds)  # setns(mnt) moves us to its root
        os.chdir(plan.cwd)
        baseline.restrict_self_if_available(plan.roots, scoped=True, net=plan.net)
        from peninsula.sandbox.handoff import load_and_hand_over

        load_and_hand_over(program, sock)
        sock.close()
        if "pid" in ns_fds:
            # setns(CLONE_NEWPID) applies to children: the command runs in
            # a child, and we pass its fate on.
            command = os.fork()
            if command == 0:
                exec_command(plan, exec_w)
            os.close(exec_w)
            _mirror(command)
        exec_command(plan, exec_w)
    except (OSError, baseline.BaselineError) as err:
        message = setup_message(err)
        try:
            sock.send(f"error {message}".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def exec_command(plan: Plan, exec_w: int) -> None:
    """Set the resource limits and exec; never returns."""
    code = EXIT_SETUP
    try:
        # Python ignores SIGPIPE and SIGXFSZ at start-up and exec keeps
        # ignored signals ignored: give the command the defaults back.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1,
                    signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        if plan.pids_procs_fd is not None:
            from peninsula.kernel.pidslimit import join

            try:
                join(plan.pids_procs_fd)
            except OSError as err:
                os.write(exec_w, f"rlimit limit_nproc {plan.box.options.limit_nproc} cannot join the pids cgroup: "
                                 f"{err.strerror}".encode("utf-8", "replace"))
                return
        for name, which, value in plan.limits:
            # CPU: SIGXCPU at the soft limit, SIGKILL a second later if it is
            # caught or ignored (soft = hard would be SIGKILL at once).
            hard = value + 1 if which == resource.RLIMIT_CPU else value
            try:
                resource.setrlimit(which, (value, hard))
            except (OSError, ValueError) as err:
                # Python reports the kernel's EPERM as ValueError("not allowed to raise maximum limit").
                why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                os.write(exec_w, f"rlimit {name} {value} {why}".encode("utf-8", "replace"))
                return
        try:
            os.execvpe(plan.argv[0], plan.argv, plan.env)
        except OSError as err:
            os.write(exec_w, f"{err.errno} ".encode())
            code = EXIT_NOTFOUND if err.errno == errno.ENOENT else EXIT_NOEXEC
    finally:
        os._exit(code)


def _mirror(pid: int) -> None:
    """Wait for pid and end the same way; never returns."""
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)  # the terminal sends these to the command too

    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, forward)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if sig not in (signal.SIGKILL, signal.SIGSTOP):  # these cannot be caught anyway
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
            os.kill(os.getpid(), sig)
        finally:
            os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def setup_message(err: Exception) -> str:
    if isinstance(err, OSError) and err.errno == errno.EBUSY:
        return (
            "this process already runs under a seccomp user-notify supervisor "
            "(peninsula or another notify sandbox); the kernel allows only one "
            "listener per filter chain, so peninsula cannot nest (EBUSY)"
        )
    return f"cannot install the sandbox: {err}"
