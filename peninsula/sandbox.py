"""The library API: confine one command and everything it starts.

    from peninsula import Sandbox
    result = Sandbox(project="/src/app", write=["~/.cache/pip"]).run(["make"])
    print(result.status, result.exit_code, result.denials)

    running = Sandbox(limit_walltime=60, unshare_net=True).spawn(["pytest"])
    running.pid; running.kill(); result = running.wait()

Process layout (one run):

    caller ── supervisor (Landlock baseline) ── command (baseline + scoping
       │             │                                + seccomp filter)
       │             └─ [namespace holder: pid 1 of a new pid namespace]
       └ child subreaper

The supervisor restricts itself to the baseline before it forks the
command, so the command's Landlock domain nests inside the supervisor's:
the supervisor may read the command's memory and /proc entries, and the
command can signal or trace neither the supervisor nor the caller. The
caller is a child subreaper, so if the supervisor is killed it still reaps
the command and says what happened. The supervisor is a child subreaper
too: every process the command starts stays beneath it, so a wall-time
limit or kill() reaches grandchildren that were orphaned or daemonised.

Namespaces (unshare_net/pid/ipc/uts) are made by a short-lived holder
process that the supervisor forks *before* it restricts itself (Landlock
forbids mounting, and the new /proc needs a mount). The command joins them
with setns() before its own Landlock and seccomp steps. A user that is not
root gets a user namespace that maps only its own uid and gid, so files it
creates belong to it, and the supervisor (which stays in the original
namespaces) sees the real ids. Only /proc is mounted anew (with a pid
namespace); every other path means what it means to the supervisor.
"""

from __future__ import annotations

import ctypes
import errno
import fnmatch
import glob
import json
import os
import resource
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from . import baseline, defaults, libc, policy, target
from .config import ConfigError, Options, check_env_pattern, check_hostname, parse_env_assignment, parse_port, parse_seconds, parse_size, parse_count

# Exit codes for peninsula's own failures (the command's own status is
# passed through; 128+N when it was killed by signal N).
EXIT_SETUP = 125  # bad usage, bad config, or a sandbox that cannot be built
EXIT_NOEXEC = 126  # the command was found but could not be executed
EXIT_NOTFOUND = 127  # the command was not found
EXIT_SUPERVISOR_DIED = 123  # the supervisor died; the command was cut off
EXIT_TIMEOUT = 124  # the wall-time limit killed the command (as timeout(1))

STATUSES = ("ok", "exited nonzero", "signaled", "timed out", "setup failed", "supervisor died")
REPORT_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.schema.json")

# The resource limits, their setrlimit resource, and how values are read.
LIMITS = {
    "limit_as": (resource.RLIMIT_AS, parse_size),
    "limit_cpu": (resource.RLIMIT_CPU, parse_count),
    "limit_fsize": (resource.RLIMIT_FSIZE, parse_size),
    "limit_nofile": (resource.RLIMIT_NOFILE, parse_count),
    "limit_nproc": (resource.RLIMIT_NPROC, parse_count),
}

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


class SandboxError(Exception):
    """Setting up the sandbox failed; the message is for the user."""


@dataclass
class Result:
    status: str  # one of STATUSES
    exit_code: int | None
    signal: int | None
    start_time: float
    real_time: float
    user_time: float
    system_time: float
    max_rss_kb: int
    denials: int
    first_denials: list = field(default_factory=list)
    message: str | None = None

    @property
    def returncode(self) -> int:
        """The exit status the CLI gives back for this result."""
        if self.status == "setup failed":
            return self.exit_code if self.exit_code is not None else EXIT_SETUP
        if self.status == "supervisor died":
            return EXIT_SUPERVISOR_DIED
        if self.status == "timed out":
            return EXIT_TIMEOUT
        if self.signal:
            return 128 + self.signal
        return self.exit_code or 0

    def to_dict(self) -> dict:
        """The report object (see report.schema.json)."""
        data = asdict(self)
        data["returncode"] = self.returncode
        data["start_time_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.start_time))
        return data

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=True, indent=indent)


def _canonical(path: str) -> str:
    """realpath for plain paths; for a glob, realpath of its literal prefix."""
    negate = path.startswith("!")
    text = path[1:] if negate else path
    if glob.has_magic(text):
        head, tail = text, ""
        while glob.has_magic(head):
            head, part = os.path.split(head)
            tail = os.path.join(part, tail) if tail else part
        text = os.path.join(os.path.realpath(head), tail)
    else:
        text = os.path.realpath(text)
    return ("!" if negate else "") + text


def _check(value, convert, what: str):
    try:
        return convert(value)
    except ValueError as err:
        raise SandboxError(f"{what}: {err}") from None


class Sandbox:
    """Options for confining a command; run() or spawn() it.

    Every keyword has a `peninsula run` flag of the same name. Options from
    profiles (by name) and config files (paths) are applied first, in that
    order; the keywords given here add to them or override them.
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        write=(),
        protect=(),
        read_only: bool = False,
        hardlinked_writes: bool = False,
        log: str | None = None,
        log_max_size=None,
        quiet: bool = False,
        verbose: bool = False,
        workdir: str | None = None,
        env: dict | None = None,
        stderr=None,
        profiles=(),
        configs=(),
        allow_connect=(),
        allow_bind=(),
        allow_socket=(),
        allow_loopback=(),
        unshare_net: bool = False,
        unshare_pid: bool = False,
        unshare_ipc: bool = False,
        unshare_uts: bool = False,
        hostname: str | None = None,
        limit_as=None,
        limit_cpu=None,
        limit_fsize=None,
        limit_nofile=None,
        limit_nproc=None,
        limit_walltime=None,
        clear_env: bool = False,
        keep_env=(),
        setenv=None,
        best_effort: bool = False,
        fast: bool = False,
    ):
        from .config import load_options, load_profile

        self.project = os.path.abspath(project or os.getcwd())
        limits = {}
        for name, value in (("limit_as", limit_as), ("limit_cpu", limit_cpu), ("limit_fsize", limit_fsize),
                            ("limit_nofile", limit_nofile), ("limit_nproc", limit_nproc)):
            if value is not None:
                limits[name] = _check(value, LIMITS[name][1], "--" + name.replace("_", "-"))
        if limit_walltime is not None:
            limits["limit_walltime"] = _check(limit_walltime, parse_seconds, "--limit-walltime")
        if isinstance(setenv, dict):
            pairs = tuple((str(k), str(v)) for k, v in setenv.items())
        else:
            pairs = tuple(_check(item, parse_env_assignment, "--setenv") for item in (setenv or ()))
        given = Options(
            write=tuple(os.path.abspath(os.path.expanduser(p)) for p in write),
            protect=tuple(p if p.startswith("!") else os.path.abspath(os.path.expanduser(p)) for p in protect),
            read_only=read_only,
            hardlinked_writes=hardlinked_writes,
            log=log,
            log_max_size=_check(log_max_size, parse_size, "--log-max-size") if log_max_size is not None else None,
            allow_connect=tuple(_check(p, parse_port, "--allow-connect") for p in allow_connect),
            allow_bind=tuple(_check(p, parse_port, "--allow-bind") for p in allow_bind),
            allow_socket=tuple(os.path.abspath(os.path.expanduser(p)) for p in allow_socket),
            allow_loopback=tuple(_check(p, parse_port, "--allow-loopback") for p in allow_loopback),
            unshare_net=unshare_net,
            unshare_pid=unshare_pid,
            unshare_ipc=unshare_ipc,
            unshare_uts=unshare_uts,
            hostname=_check(hostname, check_hostname, "--hostname") if hostname is not None else None,
            clear_env=clear_env,
            keep_env=tuple(_check(k, check_env_pattern, "--keep-env") for k in keep_env),
            setenv=pairs,
            workdir=os.path.abspath(os.path.expanduser(workdir)) if workdir else None,
            best_effort=best_effort,
            fast=fast,
            **limits,
        )
        options = Options()
        try:
            for name in profiles:
                options = options.merged(load_profile(name))
            for name in configs:
                options = options.merged(load_options(name))
        except ConfigError as err:
            raise SandboxError(str(err)) from None
        self.options = options.merged(given)
        self.quiet = quiet
        self.verbose = verbose
        self.env = env
        self.own_caches = True  # the project's own tool caches (nested runs make none)
        self.stderr = stderr if stderr is not None else sys.stderr

    @classmethod
    def from_options(cls, options: Options, **kwargs) -> "Sandbox":
        box = cls(**kwargs)
        box.options = box.options.merged(options)
        return box

    @property
    def workdir(self) -> str | None:
        return self.options.workdir

    def policy(self) -> policy.Policy:
        opts = self.options
        # The project and its own tool caches (defaults.CACHE_ENV).
        roots = [] if opts.read_only else [self.project]
        if self.own_caches and not opts.read_only:
            roots.append(defaults.project_cache(_canonical(self.project), create=True))
        # Not $XDG_RUNTIME_DIR: the user's services (D-Bus, gpg-agent,
        # Wayland, pulse) listen there, and a command that may replace their
        # sockets can answer unconfined programs in their place.
        runtime = defaults.runtime_dir()
        roots += list(opts.write) + [r for r in defaults.temp_roots() if r != runtime]
        writable = tuple(dict.fromkeys(_canonical(r) for r in roots))
        if "/" in writable:
            raise SandboxError("refusing to make / writable: that is no sandbox")
        from .session import session_root

        # The shell sessions' root too: a run must not re-point a session's
        # files or plant a session (sessiondir.py).
        protected = tuple(_canonical(p) for p in (*defaults.protected_paths(), session_root(), *opts.protect))
        return policy.Policy(writable=writable, protected=protected, hardlinked_writes=opts.hardlinked_writes)

    def baseline_roots(self, pol: policy.Policy) -> tuple[str, ...]:
        return pol.writable + policy.DEVICE_WRITES

    # -- what the command process gets ----------------------------------------

    def net_rules(self) -> baseline.NetRules | None:
        opts = self.options
        if not opts.allow_connect and not opts.allow_bind:
            return None  # the network is untouched
        return baseline.NetRules(tuple(dict.fromkeys(opts.allow_connect)), tuple(dict.fromkeys(opts.allow_bind)))

    def namespaces(self) -> tuple[str, ...]:
        """The namespace kinds this sandbox creates (empty: none)."""
        opts = self.options
        kinds = []
        if opts.unshare_pid:
            kinds += ["mnt", "pid"]  # a pid namespace needs its own /proc
        if opts.unshare_net:
            kinds.append("net")
        if opts.unshare_ipc:
            kinds.append("ipc")
        if opts.unshare_uts:
            kinds.append("uts")
        if kinds and os.geteuid() != 0:
            kinds.insert(0, "user")
        return tuple(k for k in NS_ORDER if k in kinds)

    def limits(self) -> list[tuple[str, int, int]]:
        """(option, RLIMIT_*, value) for every resource limit set."""
        out = []
        for name, (which, _) in LIMITS.items():
            value = getattr(self.options, name)
            if value is not None:
                out.append((name, which, value))
        return out

    def command_env(self) -> dict:
        opts = self.options
        env = dict(os.environ if self.env is None else self.env)
        if opts.clear_env:
            env = {k: v for k, v in env.items() if any(fnmatch.fnmatchcase(k, p) for p in opts.keep_env)}
        elif not opts.read_only and self.own_caches:
            env.update(defaults.cache_env(_canonical(self.project)))  # the project's own tool caches
        env.update(dict(opts.setenv))
        env["PENINSULA_SANDBOX"] = "run"
        return env

    def check(self) -> None:
        """Refuse what cannot be done, before anything is started."""
        opts = self.options
        abi = baseline.abi_version()
        missing = baseline.missing_features(scoped=True)
        if missing and not opts.best_effort:
            raise SandboxError(
                "refusing to run with weaker enforcement than promised: " + "; ".join(missing)
                + ". Set best_effort = true in a config (or --best-effort) to run anyway; see `peninsula doctor`"
            )
        for line in missing:
            self.stderr.write(f"peninsula: best effort: NOT enforced: {line}\n")
        if self.net_rules() is not None and abi < baseline.NETWORK_ABI:
            raise SandboxError(
                f"--allow-connect/--allow-bind need Landlock ABI {baseline.NETWORK_ABI} (TCP port rules); "
                f"this kernel has ABI {abi}"
            )
        if opts.hostname is not None and not opts.unshare_uts:
            raise SandboxError("--hostname needs --unshare-uts (the host name is shared otherwise)")
        if opts.keep_env and not opts.clear_env:
            raise SandboxError("--keep-env only makes sense with --clear-env (without it every variable is kept)")
        if opts.workdir is not None and not os.path.isdir(opts.workdir):
            raise SandboxError(f"--workdir {opts.workdir}: not a directory")
        from .denial_log import LOG_CAP_MIN

        if opts.log_max_size is not None and opts.log_max_size < LOG_CAP_MIN:
            raise SandboxError(f"--log-max-size {opts.log_max_size}: below the least useful cap, {LOG_CAP_MIN // 1024}K")
        for name, which, value in self.limits():
            _soft, hard = resource.getrlimit(which)
            if os.geteuid() != 0 and hard != resource.RLIM_INFINITY and value > hard:
                flag = "--" + name.replace("_", "-")
                raise SandboxError(f"{flag} {value}: above the hard limit {hard}, which only root can raise")

    def run(self, argv: list[str]) -> Result:
        return self.spawn(argv).wait()

    def spawn(self, argv: list[str]) -> "Running":
        if not argv:
            raise SandboxError("no command given")
        pol = self.policy()
        self.check()
        from .allowed_dirs import create_missing

        try:
            create_missing(self.options.write, pol, lambda line: self.stderr.write(line + "\n"))
        except OSError as err:
            raise SandboxError(f"{err.filename}: allowed as writable but missing, and it cannot be created: "
                               f"{err.strerror}") from None
        log_path = self.options.log or defaults.default_log()
        return Running(self, list(argv), pol, log_path, self.pids_cgroup())

    def pids_cgroup(self):
        """For --limit-nproc where RLIMIT_NPROC does not bind (root): a
        pids cgroup (pidslimit), or a refusal that says why; else None."""
        from . import pidslimit

        limit = self.options.limit_nproc
        if limit is None or not pidslimit.rlimit_nproc_ignored():
            return None
        try:
            return pidslimit.PidsCgroup(limit)
        except pidslimit.PidsLimitError as err:
            raise SandboxError(f"--limit-nproc {limit}: the kernel does not apply RLIMIT_NPROC to root (nor to "
                               f"CAP_SYS_RESOURCE/CAP_SYS_ADMIN) and no pids cgroup can be made here ({err}); "
                               "run as a plain user or without --limit-nproc") from None


class Running:
    """A started sandbox.

    pid: the sandbox's top process (the command itself; with unshare_pid,
         the process outside the pid namespace that runs it), or None when
         the sandbox could not be set up.
    supervisor_pid: the supervisor.
    wait() -> Result; kill() ends the command and everything it started;
    poll() -> Result or None without blocking.
    """

    def __init__(self, box: Sandbox, argv: list[str], pol: policy.Policy, log_path: str, pids_cgroup=None):
        self.box = box
        self.pids_cgroup = pids_cgroup  # removed once the run is over
        self.argv = argv
        self.start = time.time()
        self._t0 = time.monotonic()
        self._result: Result | None = None
        libc.prctl_set_child_subreaper()
        result_r, result_w = os.pipe()
        info_r, info_w = os.pipe()
        denial_log = defaults.open_log(log_path, box.options.log_max_size)
        stderr_fd = box.stderr.fileno() if hasattr(box.stderr, "fileno") else 2
        plan = _Plan(box, argv, pol)
        plan.pids_procs_fd = pids_cgroup.procs_fd if pids_cgroup is not None else None
        self.supervisor_pid = os.fork()
        if self.supervisor_pid == 0:
            os.close(result_r)
            os.close(info_r)
            code = 1
            try:
                code = _supervisor_main(plan, denial_log, result_w, info_w, stderr_fd)
            except BaseException:  # never return into the caller's code
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(result_w)
        os.close(info_w)
        if denial_log is not None:
            denial_log.close()
        if pids_cgroup is not None:
            pids_cgroup.close_fd()
        self._result_r = result_r
        line = _read_line(info_r)
        self.pid = int(line) if line.strip().isdigit() and int(line) > 0 else None

    def kill(self) -> None:
        """Kill the command and every process it started (SIGKILL)."""
        if self._result is None:
            try:
                os.kill(self.supervisor_pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    def poll(self) -> Result | None:
        if self._result is None:
            ready, _, _ = select.select([self._result_r], [], [], 0)
            if not ready:
                return None
        return self.wait()

    def wait(self) -> Result:
        if self._result is not None:
            return self._result
        data = b""
        while True:
            chunk = os.read(self._result_r, 65536)
            if not chunk:
                break
            data += chunk
        os.close(self._result_r)
        _, status = os.waitpid(self.supervisor_pid, 0)
        self._result = Result(**json.loads(data)) if data else self._supervisor_died(status)
        if self.pids_cgroup is not None:
            self.pids_cgroup.remove()
        return self._result

    def _supervisor_died(self, status: int) -> Result:
        how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.waitstatus_to_exitcode(status)}"
        message = (
            f"peninsula: the supervisor died ({how}); sandboxed syscalls that need it now fail "
            "with ENOSYS, so nothing more can be written. Re-run the command to recover."
        )
        self.box.stderr.write(message + "\n")
        self.box.stderr.flush()
        # Orphans of the supervisor are ours now (subreaper): wait for them.
        usage = None
        while True:
            try:
                _, _, usage = os.wait4(-1, 0)
            except ChildProcessError:
                break
        real = time.monotonic() - self._t0
        return Result("supervisor died", None, None, self.start, real,
                      usage.ru_utime if usage else 0.0, usage.ru_stime if usage else 0.0,
                      usage.ru_maxrss if usage else 0, 0, [], message)


class _Plan:
    """Everything the supervisor and command processes need, computed
    in the caller (where errors can still be raised as SandboxError)."""

    def __init__(self, box: Sandbox, argv: list[str], pol: policy.Policy):
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


def _read_line(fd: int) -> bytes:
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


# -- process trees ---------------------------------------------------------------


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


# -- namespaces -------------------------------------------------------------------


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
    answer = _read_line(ready_r)
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


# -- the supervisor process ---------------------------------------------------------


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


def _supervisor_main(plan: _Plan, denial_log, result_w, info_w, stderr_fd) -> int:
    """In the supervisor process: restrict ourselves, start the command, serve."""
    from .supervisor import Supervisor

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
    from .filtercache import filter_bpf
    from .seccomp import FilterProgram

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
    from .sockets import AllowList, shipped_allowlist, user_allowlist

    sockets_allowed = AllowList(shipped_allowlist() + user_allowlist(box.options.allow_socket, "--allow-socket"))
    # (found before the command can rename anything)
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        parent_sock.close()
        os.close(exec_r)
        for fd in (result_w, info_w, *(denial_log.fds() if denial_log is not None else ())):
            os.close(fd)
        _command_main(plan, program, child_sock, exec_w, ns_fds)
    for fd in ns_fds.values():
        os.close(fd)
    child_sock.close()
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
    sup = Supervisor(listener_fd, plan.policy, notices, box.verbose, sockets=sockets_allowed)
    sup.tcp_connect_ports = plan.net.connect if plan.net is not None else None
    sup.socket_hint = "--allow-socket {path}"
    from .loopback import shipped_ports

    sup.loopback_ports = shipped_ports(box.options.allow_loopback, "--allow-loopback")
    sup.loopback_hint = "--allow-loopback {port}"
    sup.own_netns = box.options.unshare_net  # its sockets live in the run's own namespace (loopback.py)
    sup.serve()
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
    from .supervisor import DenialNotices

    class Notices(DenialNotices):
        _hints = None

        def _line(self, name, pid, denied):
            line = super()._line(name, pid, denied)
            if "outside" not in denied.reason:
                return line
            from .hints import profile_for

            profile = profile_for(denied.path)
            if profile:
                line += f" (or --profile {profile}: shared between projects, see `peninsula profiles`)"
            return line

    return Notices(stream, denial_log, quiet)


# -- the command process --------------------------------------------------------------


def _command_main(plan: _Plan, program, sock, exec_w, ns_fds: dict[str, int]) -> None:
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
        from .handoff import load_and_hand_over

        load_and_hand_over(program, sock)
        sock.close()
        if "pid" in ns_fds:
            # setns(CLONE_NEWPID) applies to children: the command runs in
            # a child, and we pass its fate on.
            command = os.fork()
            if command == 0:
                _exec_command(plan, exec_w)
            os.close(exec_w)
            _mirror(command)
        _exec_command(plan, exec_w)
    except (OSError, baseline.BaselineError) as err:
        message = _setup_message(err)
        try:
            sock.send(f"error {message}".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def _exec_command(plan: _Plan, exec_w: int) -> None:
    """Set the resource limits and exec; never returns."""
    code = EXIT_SETUP
    try:
        # Python ignores SIGPIPE and SIGXFSZ at start-up and exec keeps
        # ignored signals ignored: give the command the defaults back.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1,
                    signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        if plan.pids_procs_fd is not None:
            from .pidslimit import join

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


def _setup_message(err: Exception) -> str:
    if isinstance(err, OSError) and err.errno == errno.EBUSY:
        return (
            "this process already runs under a seccomp user-notify supervisor "
            "(peninsula or another notify sandbox); the kernel allows only one "
            "listener per filter chain, so peninsula cannot nest (EBUSY)"
        )
    return f"cannot install the sandbox: {err}"
