"""The supervised interactive shell: `peninsula shell` and the shell hooks.

Process layout:

    peninsula shell (caller, subreaper) ── supervisor ── the user's shell
                                                          └─ everything it starts

The supervisor keeps a timeline of the shell's state (which project it is
in) and judges each trapped syscall by the state in force when the shell
started the head of the caller's line (timeline.py). Tightening is
immediate (the shell's chdir is trapped); lifting happens only when the
shell itself, at its prompt, opens PING_PATH: a syscall whose pid no other
process can forge. The supervisor then reads the shell's real cwd from /proc
and the project facts from disk; the hook only says "something changed".
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import signal
import socket
import sys
import threading
import time

from . import baseline, defaults, emulate, target
from .config import ConfigError
from .project import Project, find_project, project_policy, strict_policy
from .resolve import location
from .timeline import STRICT, UNCONFINED, ShellState, Timeline, tighten
from .userconfig import UserConfig, load_user_config

PING_PATH = b"/dev/null/.peninsula-prompt"  # never exists: only the supervisor answers it
CLK_TCK = os.sysconf("SC_CLK_TCK")
ENV_SESSION = "PENINSULA_SESSION"
ENV_SESSION_DIR = "PENINSULA_SESSION_DIR"
ENV_SHELL_PID = "PENINSULA_SHELL_PID"
MAX_ANSWERS = 8192


def now_tick() -> int:
    """Clock ticks since boot, the unit of /proc/PID/stat's start time."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * CLK_TCK)


def last_pid() -> int | None:
    """The newest pid allocated in our pid namespace."""
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


def session_root() -> str:
    runtime = defaults.runtime_dir()
    if runtime:
        return os.path.join(runtime, "peninsula")
    return os.path.join("/tmp", f"peninsula-{os.getuid()}")


def baseline_roots(conf: UserConfig) -> tuple[str, ...]:
    """Landlock roots for a shell session: home, temp, runtime, devices, and
    what the user config adds. Confinement to a project is the supervisor's job."""
    from .policy import DEVICE_WRITES

    roots = [defaults.home(), *defaults.temp_roots(), *conf.baseline, *conf.write, *DEVICE_WRITES]
    return tuple(dict.fromkeys(os.path.realpath(r) for r in roots if not glob.has_magic(r)))


def make_shell_supervisor(listener_fd, notices, conf: UserConfig, shell_pid: int, session_dir: str, verbose: bool,
                          broker=None, wake_r: int | None = None):
    import select

    from .supervisor import Supervisor

    class _ShellSupervisor(Supervisor):
        def __init__(self):
            super().__init__(listener_fd, None, notices, verbose)
            self.broker = broker
            self.wake_r = wake_r
            if wake_r is not None:
                self.poller.register(wake_r, select.POLLIN)
            self.conf = conf
            self.conf_mtime = _mtime(conf.source)
            self.shell_pid = shell_pid
            self.session_dir = session_dir
            self.extra_protected = (session_dir,)
            self.timeline = Timeline(UNCONFINED, now_tick())
            self.answers: dict[tuple[int, int], ShellState] = {}
            self.policies: dict[ShellState, object] = {}
            self.told: set[str] = set()
            self.known_projects: set[str] = set()  # once a project, always, this session
            self.lock = threading.Lock()
            for name in ("chdir", "fchdir"):
                from .seccomp import syscall_number

                self.handlers[syscall_number(name)] = getattr(self, f"h_{name}")
            self.prompt_ping()

        def on_event(self, fd: int, mask: int) -> None:
            if fd == self.wake_r:
                # A command joined the session (join.py): serve its listener too.
                os.read(fd, 4096)
                while not self.broker.pending.empty():
                    self.add_listener(self.broker.pending.get())
                return
            super().on_event(fd, mask)

        # -- judgement -------------------------------------------------------

        def state_of(self, tgid: int) -> ShellState:
            if tgid == self.shell_pid:
                return self.timeline.current
            chain: list[tuple[int, int]] = []
            pid = tgid
            state = STRICT
            while True:
                try:
                    key = (pid, target.start_time(pid))
                except (OSError, ValueError, IndexError):
                    break  # vanished mid-walk: strictest
                known = self.answers.get(key)
                if known is not None:
                    state = known
                    break
                chain.append(key)
                parent = target.parent_of(pid)
                if parent == self.shell_pid:
                    state = self.timeline.at(key[1], pid)
                    break
                if parent <= 1:
                    break  # reparented away from its line and never seen: strictest
                pid = parent
            for key in chain:
                self.answers[key] = state
            if len(self.answers) > MAX_ANSWERS:
                self._prune()
            return state

        def _prune(self) -> None:
            for key in list(self.answers):
                try:
                    alive = target.start_time(key[0]) == key[1]
                except (OSError, ValueError, IndexError):
                    alive = False
                if not alive:
                    del self.answers[key]

        def policy_for(self, state: ShellState):
            if not state.confined:
                return None
            pol = self.policies.get(state)
            if pol is None:
                if state.strict:
                    pol = strict_policy(self.conf, self.extra_protected)
                else:
                    pol, notices = project_policy(Project(state.project, ""), self.conf, self.extra_protected)
                    for line in notices:
                        self.tell(line)
                self.policies[state] = pol
            return pol

        def dispatch(self, req, handler):
            with self.lock:
                if req.tgid == self.shell_pid and req.nr in self.open_numbers:
                    if self._is_ping(req):
                        self.prompt_ping()
                        return emulate.Fd(os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC), True)
                if handler in (self.h_chdir, self.h_fchdir):
                    return handler(req)
                pol = self.policy_for(self.state_of(req.tgid))
                if pol is None:
                    return emulate.CONTINUE  # not confined: no restriction bears
                self.policy = pol
                return handler(req)

        open_numbers = frozenset((2, 257, 85))  # open, openat, creat

        def _is_ping(self, req) -> bool:
            index = 1 if req.nr == 257 else 0
            try:
                return req.path(index) == PING_PATH
            except OSError:
                return False

        # -- the shell's state -------------------------------------------------

        def _enter(self, req, pinned: int) -> None:
            where = location(pinned)
            project = self.find(where)
            root = project.root if project else None
            if req.tgid == self.shell_pid:
                self.timeline.record(now_tick(), tighten(self.timeline.current, root), last_pid())
                self.write_state()
                return
            if root is None:
                return
            # Any other process that walks into a project is confined to it
            # from now on, and so is everything it starts.
            current = self.state_of(req.tgid)
            if not current.confined:
                self.answers[(req.tgid, target.start_time(req.tgid))] = ShellState(root)

        def h_chdir(self, req):
            if req.tgid != self.shell_pid and self.state_of(req.tgid).confined:
                return emulate.CONTINUE
            with contextlib.suppress(OSError):
                self._enter(req, req.pin(-100, req.path(0), follow=True))
            return emulate.CONTINUE  # changing directory writes nothing

        def h_fchdir(self, req):
            if req.tgid != self.shell_pid and self.state_of(req.tgid).confined:
                return emulate.CONTINUE
            with contextlib.suppress(OSError):
                self._enter(req, req.fd_object(req.dirfd(0)))
            return emulate.CONTINUE

        def prompt_ping(self) -> None:
            """The shell is at its prompt: read the facts and set its state."""
            self.reload_config()
            self.policies.clear()  # project configs and trust may have changed
            try:
                cwd = os.readlink(f"/proc/{self.shell_pid}/cwd")
            except OSError:
                return
            project = self.find(cwd)
            state = ShellState(project.root) if project else UNCONFINED
            self.timeline.record(now_tick(), state, last_pid())
            if project is not None:
                self.policy_for(state)  # says once if its config is untrusted
            self.write_state(project)

        def find(self, where: str) -> Project | None:
            if not where.startswith("/"):
                return None
            project = find_project(where, self.conf, self.known_projects)
            if project is not None:
                self.known_projects.add(project.root)
            return project

        def reload_config(self) -> None:
            path = self.conf.source or _user_config_path()
            mtime = _mtime(path)
            if mtime == self.conf_mtime:
                return
            self.conf_mtime = mtime
            try:
                self.conf = load_user_config(path)
            except ConfigError as err:
                self.tell(f"{err} (keeping the previous configuration)")
                return
            self.policies.clear()

        def write_state(self, project: Project | None = None) -> None:
            state = self.timeline.current
            if state.strict:
                text = "strict\n"
            elif state.project:
                text = f"{os.path.basename(state.project)}\t{state.project}\n"
            else:
                text = "\n"
            path = os.path.join(self.session_dir, "state")
            with contextlib.suppress(OSError):
                with open(path + ".new", "w") as handle:
                    handle.write(text)
                os.rename(path + ".new", path)

        def tell(self, line: str) -> None:
            if line in self.told:
                return
            self.told.add(line)
            self.notices._say(f"peninsula: {line}")

        # -- control channel -------------------------------------------------------

        def describe(self, pid: int | None) -> dict:
            from .join import caller_state

            state = self.timeline.current if pid is None else caller_state(self, pid)
            with self.lock:
                pol = self.policy_for(state)
            return {
                "session": os.path.basename(self.session_dir),
                "shell_pid": self.shell_pid,
                "shell_state": self.timeline.current.describe(),
                "shell_project": self.timeline.current.project,
                "caller_state": state.describe(),
                "confined": state.confined,
                "project": state.project,
                "writable": list(pol.writable) if pol else None,
                "protected": list(pol.protected) if pol else None,
                "requests": self.requests,
            }

        def check(self, pid: int | None, path: str) -> dict:
            from . import policy as engine

            from .join import caller_state

            state = self.timeline.current if pid is None else caller_state(self, pid)
            with self.lock:
                pol = self.policy_for(state)
            if pol is None:
                return {"allow": True, "reason": "not confined: " + state.describe()}
            decision = engine.decide_write(pol, path)
            return {"allow": decision.allow, "reason": decision.reason}

    return _ShellSupervisor()


def _mtime(path: str | None):
    if not path:
        return None
    try:
        info = os.stat(path)
        return (info.st_mtime_ns, info.st_size, info.st_ino)
    except OSError:
        return None


def _user_config_path() -> str:
    from .userconfig import config_path

    return config_path()


# -- launching ------------------------------------------------------------------------


class SessionError(Exception):
    pass


def start_shell(shell_argv: list[str], *, verbose: bool = False) -> int:
    """Run the user's shell under a supervisor; returns the shell's exit status."""
    from .sandbox import _open_log, _set_child_subreaper

    if os.environ.get(ENV_SESSION):
        raise SessionError(
            "this shell already runs under peninsula (session "
            f"{os.environ[ENV_SESSION]}); a sandbox cannot nest inside another"
        )
    conf = load_user_config()
    if baseline.abi_version() <= 0 and not conf.best_effort:
        raise SessionError("Landlock is not available on this kernel; see `peninsula doctor`")
    session_id = f"{os.getpid()}-{int(time.time())}"
    session_dir = os.path.join(session_root(), session_id)
    os.makedirs(session_dir, mode=0o700)
    log_fd = _open_log(defaults.default_log())
    _set_child_subreaper()
    result_r, result_w = os.pipe()
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    pid = os.fork()
    if pid == 0:
        os.close(result_r)
        code = 1
        try:
            code = _supervisor_main(shell_argv, conf, session_dir, log_fd, result_w, verbose)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(result_w)
    data = b""
    while chunk := _read(result_r):
        data += chunk
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        import shutil

        shutil.rmtree(session_dir)
    if data:
        result = json.loads(data)
        if "setup_error" in result:
            raise SessionError(result["setup_error"])
        return result["code"]
    sys.stderr.write(
        "peninsula: the supervisor died; commands still running in this session now get ENOSYS "
        "for every write. Start a new shell to recover.\n"
    )
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    return 123


def _read(fd: int) -> bytes:
    while True:
        try:
            return os.read(fd, 65536)
        except InterruptedError:
            continue


def _supervisor_main(shell_argv, conf, session_dir, log_fd, result_w, verbose) -> int:
    from .seccomp import FilterProgram, build_filter_bpf
    from .supervisor import DenialNotices

    roots = baseline_roots(conf)

    def setup_failed(message: str) -> int:
        os.write(result_w, json.dumps({"setup_error": message}).encode())
        return 0

    try:
        baseline.restrict_self(roots, scoped=False)
    except Exception as err:
        return setup_failed(f"cannot apply the Landlock baseline: {err}")
    program = FilterProgram(build_filter_bpf(trap_chdir=True))
    from .join import Broker, zygote_main

    zygote_sock, our_zygote_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if os.fork() == 0:
        # The zygote: forked now so that joining commands nest in our domain.
        our_zygote_sock.close()
        for fd in (result_w, log_fd):
            if fd is not None:
                os.close(fd)
        zygote_main(zygote_sock, roots, program)
    zygote_sock.close()
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = os.fork()
    if child == 0:
        parent_sock.close()
        _shell_main(shell_argv, roots, program, child_sock, session_dir)
    child_sock.close()
    msg, fds, _, _ = socket.recv_fds(parent_sock, 4096, 1)
    parent_sock.close()
    if not fds:
        os.waitpid(child, 0)
        return setup_failed(msg.decode("utf-8", "replace").removeprefix("error "))
    stream = os.fdopen(os.dup(2), "w", buffering=1, errors="replace")
    notices = DenialNotices(stream, log_fd, quiet=False, hint_flag="peninsula allow")
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    broker = Broker(our_zygote_sock, wake_w)
    sup = make_shell_supervisor(fds[0], notices, conf, child, session_dir, verbose, broker, wake_r)
    from .control import serve_control

    serve_control(sup, os.path.join(session_dir, "control.sock"))
    sup.serve()
    _, status, _ = os.wait4(child, 0)
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    os.write(result_w, json.dumps({"code": code}).encode())
    return 0


def _shell_main(shell_argv, roots, program, sock, session_dir) -> None:
    from . import libc

    code = 125
    try:
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        env = dict(os.environ)
        env[ENV_SESSION] = os.path.basename(session_dir)
        env[ENV_SESSION_DIR] = session_dir
        env[ENV_SHELL_PID] = str(os.getpid())
        libc.prctl_set_no_new_privs()
        baseline.restrict_self(roots, scoped=True)
        try:
            listener = program.load(killable=True)
        except OSError as err:
            if err.errno != errno.EINVAL:
                raise
            listener = program.load(killable=False)
        # No trapped syscall until the supervisor holds the listener.
        socket.send_fds(sock, [b"ok"], [listener])
        os.close(listener)
        sock.close()
        os.execvpe(shell_argv[0], shell_argv, env)
    except OSError as err:
        from .sandbox import _setup_message

        with contextlib.suppress(OSError):
            sock.send(f"error {_setup_message(err)}".encode())
        code = 127 if err.errno == errno.ENOENT else 125
    finally:
        os._exit(code)
