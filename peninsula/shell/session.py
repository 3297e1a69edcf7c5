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

from peninsula.kernel import landlock as baseline
from peninsula.config import defaults
from peninsula.config.user import UserConfig, load_user_config
from peninsula.config.defaults import session_root
from peninsula.shell.environ import ENV_SESSION, ENV_SESSION_DIR, ENV_SHELL_PID


def baseline_roots(conf: UserConfig) -> tuple[str, ...]:
    """Landlock roots for a shell session: home, temp, runtime, devices, and
    what the user config adds. Confinement to a project is the supervisor's job."""
    from peninsula.policy.engine import DEVICE_WRITES

    roots = [defaults.home(), *defaults.temp_roots(), *conf.baseline, *conf.write, *DEVICE_WRITES]
    return tuple(dict.fromkeys(os.path.realpath(r) for r in roots if not glob.has_magic(r)))


# -- launching ------------------------------------------------------------------------


class SessionError(Exception):
    pass


def start_shell(shell_argv: list[str], *, verbose: bool = False, argv0: str | None = None) -> int:
    """Run the user's shell under a supervisor; returns the shell's exit status.
    argv0, when given, is the shell's argv[0] ("-bash" makes a login shell)."""
    from peninsula.kernel import libc

    if os.environ.get(ENV_SESSION):
        raise SessionError(
            "this shell already runs under peninsula (session "
            f"{os.environ[ENV_SESSION]}); a sandbox cannot nest inside another"
        )
    conf = load_user_config()
    from peninsula.sandbox.allowed_dirs import create_missing
    from peninsula.supervisor.hints import guard_policy

    try:
        if conf.write:  # (the guard's imports are not free: every shell start)
            create_missing(conf.write, guard_policy(conf.protect), lambda line: sys.stderr.write(line + "\n"), leaf=False)
    except OSError as err:
        raise SessionError(f"{err.filename}: in `write` of {conf.source} but missing, and it cannot be created: "
                           f"{err.strerror}") from None
    missing = baseline.missing_features(scoped=True)
    if missing and not conf.best_effort:
        raise SessionError("; ".join(missing) + " (set best_effort = true in the user config to accept this)")
    for line in missing:
        sys.stderr.write(f"peninsula: best effort: NOT enforced: {line}\n")
    session_id = f"{os.getpid()}-{int(time.time())}"
    session_dir = os.path.join(session_root(), session_id)
    from peninsula.shell.sessiondir import UnsafeRoot, make_session_dir

    try:
        session_fd = make_session_dir(session_root(), session_id)
    except UnsafeRoot as err:
        raise SessionError(str(err)) from None
    from peninsula.supervisor.denial_log import DenialLog

    denial_log = DenialLog.open(defaults.default_log())
    libc.prctl_set_child_subreaper()
    from peninsula.shell import privileged

    shims = privileged.write_shims(session_dir, os.environ.get("PATH", ""))
    # sudo and friends outside projects: we are under neither no_new_privs
    # nor Landlock, so we start them for the supervisor (privileged.py).
    helper_ours, helper_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    result_r, result_w = os.pipe()
    for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    pid = os.fork()
    if pid == 0:
        os.close(result_r)
        helper_ours.close()
        code = 1
        started: dict = {}
        try:
            code = supervisor_main(shell_argv, conf, session_dir, denial_log, result_w, verbose, started, argv0,
                                    helper_theirs, shims, session_fd)
        except BaseException as err:
            pass

            if not started.get("serving"):
                # Nothing was answered yet: end the shell if it was started
                # (it waits for its first trapped call) so that the caller
                # starts it unsupervised instead, and never two shells.
                if started.get("shell"):
                    with contextlib.suppress(OSError):
                        os.kill(started["shell"], signal.SIGKILL)
                        os.waitpid(started["shell"], 0)
                with contextlib.suppress(OSError):
                    os.write(result_w, json.dumps({"setup_error": describe_exception(err)}).encode())
            else:
                sys.stderr.write(f"peninsula: the supervisor failed: {describe_exception(err)}\n")
        finally:
            os._exit(code)
    os.close(result_w)
    os.close(session_fd)
    helper_theirs.close()

    threading.Thread(target=privileged.helper_loop, args=(helper_ours,), daemon=True).start()
    data = b""
    while chunk := _read(result_r):
        data += chunk
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        for name in os.listdir(shims):
            os.unlink(os.path.join(shims, name))
        os.rmdir(shims)
        for name in os.listdir(session_dir):  # a few flat files: no shutil to load
            os.unlink(os.path.join(session_dir, name))
        os.rmdir(session_dir)
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


def supervisor_main(shell_argv, conf, session_dir, denial_log, result_w, verbose, started, argv0, helper, shims,
                     session_fd) -> int:
    from peninsula.supervisor.filtercache import filter_bpf
    from peninsula.kernel.seccomp import FilterProgram

    roots = baseline_roots(conf)

    def setup_failed(message: str) -> int:
        os.write(result_w, json.dumps({"setup_error": message}).encode())
        return 0

    # Before the baseline, which may forbid writing the filter cache.
    program = FilterProgram(filter_bpf(trap_chdir=True))
    try:
        baseline.restrict_self_if_available(roots, scoped=False)
    except Exception as err:
        return setup_failed(f"cannot apply the Landlock baseline: {err}")
    # Start the shell first: everything else here is off its critical path.
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # Closed by the shell's exec (or exit): the supervisor holds the shell's
    # program image only once it is the shell's (exec_guard.py).
    exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(exec_r)
        parent_sock.close()
        helper.close()
        _shell_main(shell_argv, roots, program, child_sock, session_dir, shims, argv0)
    started["shell"] = child
    child_sock.close()
    os.close(exec_w)
    from peninsula.shell.join import Broker, zygote_main

    zygote_sock, our_zygote_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote = os.fork()
    if zygote == 0:
        # The zygote: a child of ours, so joining commands nest in our domain.
        our_zygote_sock.close()
        parent_sock.close()
        helper.close()
        for fd in (result_w, *(denial_log.fds() if denial_log is not None else ())):
            os.close(fd)
        zygote_main(zygote_sock, roots, program)
    zygote_sock.close()
    from peninsula.supervisor.loop import DenialNotices

    msg, fds, _, _ = socket.recv_fds(parent_sock, 4096, 1)
    parent_sock.close()
    if not fds:
        os.waitpid(child, 0)
        return setup_failed(msg.decode("utf-8", "replace").removeprefix("error "))
    stream = os.fdopen(os.dup(2), "w", buffering=1, errors="replace")
    from peninsula.supervisor.hints import shell_hint
    from peninsula.supervisor.nesting import tally

    class ShellNotices(DenialNotices):
        """Hints for the shell; a joined command's notices go to its caller's stderr."""

        local = threading.local()

        def record(self, tid, tgid, denied):
            fd = broker.stream_for(tgid)
            self.local.fd = fd
            try:
                super().record(tid, tgid, denied)
                tally(sup, tgid, denied)  # for a nested run's report
            finally:
                self.local.fd = None
                if fd is not None:
                    os.close(fd)

        def say_plain(self, line):
            fd = getattr(self.local, "fd", None)
            if fd is None:
                return super().say_plain(line)
            with contextlib.suppress(OSError):
                os.write(fd, (line + "\n").encode("utf-8", "replace"))

        def hint(self, pid, denied):
            state = sup.state_of(pid)  # already answered for this request: no new walk
            project = None if state.strict else state.project
            return shell_hint(denied.path, denied.reason, project, sup.conf.protect)

    notices = ShellNotices(stream, denial_log, quiet=False)
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    broker = Broker(our_zygote_sock, wake_w)
    from peninsula.shell.judge import make_shell_supervisor

    while _read(exec_r):
        pass
    os.close(exec_r)
    sup = make_shell_supervisor(fds[0], notices, conf, child, session_dir, verbose, broker, wake_r)
    sup.session_fd = session_fd  # its files are written through this fd, never the path (sessiondir.py)
    sup.own_pids.add(zygote)

    sup.privileged_helper, sup.privileged_lock = helper, threading.Lock()
    from peninsula.shell.control_server import serve_control

    serve_control(sup, os.path.join(session_dir, "control.sock"))
    started["serving"] = True
    sup.serve()
    _, status, _ = os.wait4(child, 0)
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    os.write(result_w, json.dumps({"code": code}).encode())
    return 0


def _shell_main(shell_argv, roots, program, sock, session_dir, shims, argv0=None) -> None:
    from peninsula.kernel import libc
    from peninsula.sandbox.handoff import load_and_hand_over

    code = 125
    try:
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        env = dict(os.environ)
        env[ENV_SESSION] = os.path.basename(session_dir)
        env[ENV_SESSION_DIR] = session_dir
        env[ENV_SHELL_PID] = str(os.getpid())
        env["PATH"] = f"{shims}:{env['PATH']}" if env.get("PATH") else shims
        libc.prctl_set_no_new_privs()
        baseline.restrict_self_if_available(roots, scoped=True)
        load_and_hand_over(program, sock)
        sock.close()
        os.execvpe(shell_argv[0], [argv0 or shell_argv[0], *shell_argv[1:]], env)
    except OSError as err:
        from peninsula.sandbox.launch import setup_message

        with contextlib.suppress(OSError):
            sock.send(f"error {setup_message(err)}".encode())
        code = 127 if err.errno == errno.ENOENT else 125
    finally:
        os._exit(code)


def describe_exception(err: BaseException) -> str:
    """One line: what went wrong and where (the innermost frame)."""
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"internal error: {type(err).__name__}: {err}{where}"
