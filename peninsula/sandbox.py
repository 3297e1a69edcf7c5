"""The library API: confine one command and everything it starts.

    from peninsula import Sandbox
    result = Sandbox(project="/src/app", write=["~/.cache/pip"]).run(["make"])
    print(result.status, result.exit_code, result.denials)

Process layout (one run):

    caller ── supervisor (Landlock baseline) ── command (baseline + scoping
                                                          + seccomp filter)

The supervisor restricts itself to the baseline before it forks the
command, so the command's Landlock domain nests inside the supervisor's:
the supervisor may read the command's memory and /proc entries, and the
command can signal or trace neither the supervisor nor the caller. The
caller is a child subreaper, so if the supervisor is killed it still reaps
the command and says what happened.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import json
import os
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass, field

from . import baseline, defaults, policy
from .config import Options

# Exit codes for peninsula's own failures (the command's own status is
# passed through; 128+N when it was killed by signal N).
EXIT_SETUP = 125  # bad usage, bad config, or a sandbox that cannot be built
EXIT_NOEXEC = 126  # the command was found but could not be executed
EXIT_NOTFOUND = 127  # the command was not found
EXIT_SUPERVISOR_DIED = 123  # the supervisor died; the command was cut off


class SandboxError(Exception):
    """Setting up the sandbox failed; the message is for the user."""


@dataclass
class Result:
    status: str  # "ok", "exited nonzero", "signaled", "setup failed", "supervisor died"
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
        if self.signal:
            return 128 + self.signal
        return self.exit_code or 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


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


class Sandbox:
    """Options for confining a command; run() or spawn() it."""

    def __init__(
        self,
        *,
        project: str | None = None,
        write=(),
        protect=(),
        read_only: bool = False,
        hardlinked_writes: bool = False,
        log: str | None = None,
        quiet: bool = False,
        verbose: bool = False,
        workdir: str | None = None,
        env: dict | None = None,
        stderr=None,
    ):
        self.project = os.path.abspath(project or os.getcwd())
        self.options = Options(
            write=tuple(os.path.abspath(os.path.expanduser(p)) for p in write),
            protect=tuple(p if p.startswith("!") else os.path.abspath(os.path.expanduser(p)) for p in protect),
            read_only=read_only,
            hardlinked_writes=hardlinked_writes,
            log=log,
        )
        self.quiet = quiet
        self.verbose = verbose
        self.workdir = workdir
        self.env = env
        self.stderr = stderr if stderr is not None else sys.stderr

    @classmethod
    def from_options(cls, options: Options, **kwargs) -> "Sandbox":
        box = cls(**kwargs)
        box.options = box.options.merged(options)
        return box

    def policy(self) -> policy.Policy:
        opts = self.options
        roots = [] if opts.read_only else [self.project]
        roots += list(opts.write) + list(defaults.temp_roots())
        writable = tuple(dict.fromkeys(_canonical(r) for r in roots))
        if "/" in writable:
            raise SandboxError("refusing to make / writable: that is no sandbox")
        protected = tuple(_canonical(p) for p in defaults.protected_paths() + opts.protect)
        return policy.Policy(writable=writable, protected=protected, hardlinked_writes=opts.hardlinked_writes)

    def baseline_roots(self, pol: policy.Policy) -> tuple[str, ...]:
        return pol.writable + policy.DEVICE_WRITES

    def run(self, argv: list[str]) -> Result:
        return self.spawn(argv).wait()

    def spawn(self, argv: list[str]) -> "Running":
        if not argv:
            raise SandboxError("no command given")
        pol = self.policy()
        if baseline.abi_version() <= 0:
            raise SandboxError(
                "Landlock is not available on this kernel, so peninsula cannot enforce a write baseline; "
                "see `peninsula doctor`"
            )
        log_path = self.options.log or defaults.default_log()
        return Running(self, argv, pol, log_path)


class Running:
    """A started sandbox: wait() for its Result."""

    def __init__(self, box: Sandbox, argv: list[str], pol: policy.Policy, log_path: str):
        self.box = box
        self.start = time.time()
        self._t0 = time.monotonic()
        _set_child_subreaper()
        result_r, result_w = os.pipe()
        log_fd = _open_log(log_path)
        stderr_fd = box.stderr.fileno() if hasattr(box.stderr, "fileno") else 2
        self.pid = os.fork()
        if self.pid == 0:
            os.close(result_r)
            code = 1
            try:
                code = _supervisor_main(box, argv, pol, log_fd, result_w, stderr_fd)
            except BaseException:  # never return into the caller's code
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(result_w)
        if log_fd is not None:
            os.close(log_fd)
        self._result_r = result_r

    def wait(self) -> Result:
        data = b""
        while True:
            chunk = os.read(self._result_r, 65536)
            if not chunk:
                break
            data += chunk
        os.close(self._result_r)
        _, status = os.waitpid(self.pid, 0)
        if data:
            return Result(**json.loads(data))
        return self._supervisor_died(status)

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


def _set_child_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _open_log(path: str) -> int | None:
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        sys.stderr.write(f"peninsula: cannot open log {path}: {err.strerror}; denials are shown but not logged\n")
        return None


def _supervisor_main(box, argv, pol, log_fd, result_w, stderr_fd) -> int:
    """In the supervisor process: restrict ourselves, start the command, serve."""
    from .supervisor import DenialNotices, Supervisor

    # Ctrl-C and Ctrl-\ are for the command; we stop when it is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    t0 = time.monotonic()
    start = time.time()
    roots = box.baseline_roots(pol)

    def setup_failed(message: str, code: int = EXIT_SETUP) -> int:
        result = Result("setup failed", code, None, start, time.monotonic() - t0, 0.0, 0.0, 0, 0, [], message)
        os.write(result_w, result.to_json().encode())
        return 0

    try:
        baseline.restrict_self(roots, scoped=False)
    except Exception as err:
        return setup_failed(f"peninsula: cannot apply the Landlock baseline: {err}")
    from .seccomp import FilterProgram, build_filter_bpf

    program = FilterProgram(build_filter_bpf())
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        parent_sock.close()
        os.close(exec_r)
        _command_main(box, argv, roots, program, child_sock, exec_w)
    child_sock.close()
    os.close(exec_w)
    try:
        msg, fds, _, _ = socket.recv_fds(parent_sock, 4096, 1)
    except OSError as err:
        msg, fds = f"error cannot receive the listener: {err}".encode(), []
    parent_sock.close()
    if not fds:
        os.waitpid(child, 0)
        text = msg.decode("utf-8", "replace")
        code = EXIT_SETUP
        return setup_failed(f"peninsula: {text.removeprefix('error ')}", code)
    listener_fd = fds[0]
    stream = os.fdopen(os.dup(stderr_fd), "w", buffering=1, errors="replace")
    notices = DenialNotices(stream, log_fd, box.quiet)
    sup = Supervisor(listener_fd, pol, notices, box.verbose)
    sup.serve()
    exec_error = os.read(exec_r, 4096)
    os.close(exec_r)
    _, status, usage = os.wait4(child, 0)
    real = time.monotonic() - t0
    if exec_error:
        err = int(exec_error.split(b" ", 1)[0])
        code = EXIT_NOTFOUND if err == errno.ENOENT else EXIT_NOEXEC
        return setup_failed(f"peninsula: cannot run {argv[0]}: {os.strerror(err)}", code)
    if os.WIFSIGNALED(status):
        state, code, sig = "signaled", None, os.WTERMSIG(status)
    else:
        code, sig = os.WEXITSTATUS(status), None
        state = "ok" if code == 0 else "exited nonzero"
    result = Result(state, code, sig, start, real, usage.ru_utime, usage.ru_stime, usage.ru_maxrss,
                    notices.count, notices.first)
    os.write(result_w, result.to_json().encode())
    return 0


def _command_main(box, argv, roots, program, sock, exec_w) -> None:
    """In the command process: confine ourselves, hand the listener up, exec."""
    from . import libc

    code = EXIT_SETUP
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        if box.workdir:
            os.chdir(box.workdir)
        env = dict(os.environ if box.env is None else box.env)
        env["PENINSULA_SANDBOX"] = "run"
        baseline.restrict_self(roots, scoped=True)
        try:
            listener = program.load(killable=True)
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise
            listener = program.load(killable=False)  # kernels before 5.19
        # From here until exec, no trapped syscall may be made: the
        # supervisor cannot answer before it holds the listener.
        socket.send_fds(sock, [b"ok"], [listener])
        os.close(listener)
        sock.close()
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as err:
            os.write(exec_w, f"{err.errno} ".encode())
            code = EXIT_NOTFOUND if err.errno == errno.ENOENT else EXIT_NOEXEC
    except OSError as err:
        message = _setup_message(err)
        try:
            sock.send(f"error {message}".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def _setup_message(err: OSError) -> str:
    if err.errno == errno.EBUSY:
        return (
            "this process already runs under a seccomp user-notify supervisor "
            "(peninsula or another notify sandbox); the kernel allows only one "
            "listener per filter chain, so peninsula cannot nest (EBUSY)"
        )
    return f"cannot install the sandbox: {err}"
