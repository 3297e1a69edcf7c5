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

import fnmatch
import json
import os
import resource
import select
import signal
import sys
import time

from peninsula.kernel import landlock as baseline
from peninsula.config import defaults, socketdirs
from peninsula.kernel import libc
from peninsula.policy import engine as policy
from peninsula.config.options import ConfigError, Options, check_env_pattern, check_hostname, parse_env_assignment, parse_port, parse_seconds, parse_size, parse_count
from peninsula.config.options import canonical
from peninsula.sandbox.launch import NS_ORDER, Plan, read_line, supervisor_main
from peninsula.sandbox.report import Result, SandboxError


# The resource limits, their setrlimit resource, and how values are read.
LIMITS = {
    "limit_as": (resource.RLIMIT_AS, parse_size),
    "limit_cpu": (resource.RLIMIT_CPU, parse_count),
    "limit_fsize": (resource.RLIMIT_FSIZE, parse_size),
    "limit_nofile": (resource.RLIMIT_NOFILE, parse_count),
    "limit_nproc": (resource.RLIMIT_NPROC, parse_count),
}


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
        from peninsula.config.options import load_options, load_profile

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
        own = self.own_caches and not opts.read_only
        if own:
            roots.append(defaults.project_cache(canonical(self.project), create=True))
            # and its own tmux and screen sockets (config/socketdirs.py)
            roots += [d for d in (socketdirs.make_project_sockets(canonical(self.project)),) if d]
        # Not $XDG_RUNTIME_DIR: the user's services (D-Bus, gpg-agent,
        # Wayland, pulse) listen there, and a command that may replace their
        # sockets can answer unconfined programs in their place.
        runtime = defaults.runtime_dir()
        roots += list(opts.write) + [r for r in defaults.temp_roots() if r != runtime]
        writable = tuple(dict.fromkeys(canonical(r) for r in roots))
        if "/" in writable:
            raise SandboxError("refusing to make / writable: that is no sandbox")
        from peninsula.config.defaults import session_root

        # The shell sessions' root too: a run must not re-point a session's
        # files or plant a session (sessiondir.py).
        protected = tuple(canonical(p) for p in (
            *defaults.protected_paths(), session_root(), *defaults.protected_in_runtime(), *defaults.protected_sockets(),
            *socketdirs.socket_protections(canonical(self.project) if own else None), *opts.protect))
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
            env.update(defaults.cache_env(canonical(self.project)))  # the project's own tool caches
            env.update(socketdirs.socket_env(canonical(self.project)))  # and tmux's and screen's sockets
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
        from peninsula.supervisor.denial_log import LOG_CAP_MIN

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
        from peninsula.sandbox.allowed_dirs import create_missing

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
        from peninsula.kernel import pidslimit

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
        from peninsula.supervisor.denial_log import LOG_CAP_BYTES, DenialLog

        cap = box.options.log_max_size
        denial_log = DenialLog.open(log_path, LOG_CAP_BYTES if cap is None else cap)
        stderr_fd = box.stderr.fileno() if hasattr(box.stderr, "fileno") else 2
        plan = Plan(box, argv, pol)
        plan.pids_procs_fd = pids_cgroup.procs_fd if pids_cgroup is not None else None
        self.supervisor_pid = os.fork()
        if self.supervisor_pid == 0:
            os.close(result_r)
            os.close(info_r)
            code = 1
            try:
                code = supervisor_main(plan, denial_log, result_w, info_w, stderr_fd)
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
        line = read_line(info_r)
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


# -- process trees ---------------------------------------------------------------


# -- namespaces -------------------------------------------------------------------


# -- the supervisor process ---------------------------------------------------------


# -- the command process --------------------------------------------------------------


