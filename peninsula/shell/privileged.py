"""sudo, su and friends from a supervised shell, outside projects.

The seccomp filter needs no_new_privs, which the kernel keeps for every
process beneath the shell: a setuid program started there runs without
its privilege (sudo says so and stops). The session's top process
(`peninsula shell`, the supervisor's parent) is under neither no_new_privs
nor Landlock, so it keeps a helper that starts such programs for the shell,
and only for callers the supervisor judges unconfined:

    shim (first on PATH)  ── control socket ──>  supervisor: judges the caller
                                                  by its pidfd, passes the
                                                  connection on
    helper (in `peninsula shell`) <── socketpair ──┘
      └─ forks, joins the caller's process group, execs /usr/bin/sudo

The program joins the caller's process group in the terminal's session, so
the terminal is its controlling tty, Ctrl-C/Ctrl-Z reach it directly and
the shell's job control sees the shim stop and continue with it. Signals
sent to the shim by kill() (not by the terminal) are relayed; the shim
ends as the program did (exit status or the same signal).

Inside a project the shim is refused with one line saying how to get out.
A confined process gains nothing by calling the shim or the socket itself:
it is judged by its pidfd, which no pid reuse can redirect, and refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import sys
import threading

# Programs that only do their job with the privilege no_new_privs takes away.
# ssh-agent (setgid on Debian) and mount (lists mounts) work without it, so
# they are not here.
PROGRAMS = ("sudo", "sudoedit", "su", "doas", "pkexec", "passwd", "chsh", "chfn", "newgrp", "sg", "gpasswd")
# Relayed when sent by kill(): the terminal sends its own to the whole group,
# but Landlock's signal scoping keeps the shell's kill() (fg's SIGCONT too)
# from reaching a program outside its domain.
RELAYED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGALRM, signal.SIGWINCH, signal.SIGCONT)
SESSION_ENV = ("PENINSULA_SESSION", "PENINSULA_SESSION_DIR", "PENINSULA_SHELL_PID")
REFUSAL = ("{name} refused: this command runs {state}, where nothing may gain privilege; "
           "leave the project (cd out of it) and run {name} from there")


def shim_dir(session_dir: str) -> str:
    return os.path.join(session_dir, "bin")


def write_shims(session_dir: str, path: str) -> str:
    """One small script per program found on PATH, in the session directory
    (which confined processes may not write)."""
    directory = shim_dir(session_dir)
    os.mkdir(directory, 0o700)
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # The session directory is written into the shim, never read from the
    # environment: a project's .envrc may set PENINSULA_SESSION_DIR.
    entry = (f"import sys; sys.path.insert(0, {package_parent!r}); from peninsula.shell.privileged import shim_main; "
             f"shim_main({os.path.abspath(session_dir)!r})")
    for name in PROGRAMS:
        if _find(name, path, directory) is None:
            continue
        with open(os.path.join(directory, name), "w") as handle:
            # -I: no PYTHONPATH, user site or startup files decide what the shim runs.
            handle.write(f"#!/bin/sh\nexec {_sh_quote(sys.executable)} -I -c {_sh_quote(entry)} {name} \"$@\"\n")
            os.fchmod(handle.fileno(), 0o700)
    # The shim for a program typed by its full path (the hooks' functions
    # named /usr/bin/sudo...): that very file, never what PATH finds.
    with open(os.path.join(directory, BY_PATH), "w") as handle:
        handle.write(f"#!/bin/sh\nexec {_sh_quote(sys.executable)} -I -c {_sh_quote(entry)} \"$@\"\n")
        os.fchmod(handle.fileno(), 0o700)
    return directory


BY_PATH = ".by-path"  # a dot name: the hooks' loops over the shims skip it


def _sh_quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def _find(name: str, path: str, skip: str) -> str | None:
    for entry in path.split(":"):
        if not entry or os.path.realpath(entry) == os.path.realpath(skip):
            continue
        candidate = os.path.join(entry, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def gains_privilege(fd: int) -> bool:
    """Whether exec of this file would change credentials: setuid, setgid
    (with group execute) or file capabilities."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return False
    if info.st_mode & stat.S_ISUID or (info.st_mode & stat.S_ISGID and info.st_mode & stat.S_IXGRP):
        return True
    try:
        os.getxattr(fd, "security.capability")
        return True
    except OSError:
        return False


def outside_env(env: dict, session_dir: str) -> dict:
    """The environment as it would be without peninsula."""
    env = {str(k): str(v) for k, v in env.items() if k not in SESSION_ENV}
    skip = shim_dir(session_dir)
    if "PATH" in env:
        env["PATH"] = ":".join(p for p in env["PATH"].split(":") if p != skip)
    return env


# -- the shim (the caller's side) ------------------------------------------------


def shim_main(session_dir: str) -> None:
    name, args = sys.argv[1], sys.argv[2:]
    if name.startswith("/"):  # BY_PATH: the program typed by its full path
        program = name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    else:
        program = _find(name, os.environ.get("PATH", ""), shim_dir(session_dir))
    if program is None:
        sys.stderr.write(f"{name}: command not found\n")
        sys.exit(127)
    try:
        fd = os.open(program, os.O_RDONLY | os.O_CLOEXEC)
        privileged = gains_privilege(fd)
        os.close(fd)
    except OSError:
        privileged = False
    if not privileged:
        os.execv(program, [name, *args])  # nothing for no_new_privs to take away
    sys.exit(run_outside(session_dir, program, [name, *args]))


def run_outside(session_dir: str, program: str, argv: list[str]) -> int:
    """Ask the session to run a privileged program with our stdio, cwd and
    process group; relay signals; end as it ended."""
    request = json.dumps({"op": "privileged", "path": program, "argv": argv, "env": dict(os.environ)}).encode() + b"\n"
    # Blocked before any thread starts, so only sigwaitinfo below sees them.
    signal.pthread_sigmask(signal.SIG_BLOCK, RELAYED)
    from peninsula.shell.sessiondir import served_by_supervisor

    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(os.path.join(session_dir, "control.sock"))
        # Our terminal (a password prompt) goes to our own supervisor only.
        if not served_by_supervisor(conn, ours_only=True):
            sys.stderr.write(f"peninsula: {argv[0]}: {session_dir}/control.sock is not served by this session's "
                             "supervisor: refusing to hand it the terminal\n")
            return 1
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
        socket.send_fds(conn, [request], [0, 1, 2, cwd])
        os.close(cwd)
    except OSError as err:
        sys.stderr.write(f"peninsula: {argv[0]}: cannot reach the session: {err.strerror}\n")
        return 1
    reader = conn.makefile("rb")
    first = json.loads(reader.readline() or b"{}")
    if "pid" not in first:
        sys.stderr.write(f"peninsula: {first.get('error', 'the session closed the connection')}\n")
        return 1

    def relay():
        while True:
            info = signal.sigwaitinfo(RELAYED)
            if info.si_code <= 0:  # SI_USER, SI_QUEUE, SI_TKILL: not the terminal's
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps({"signal": info.si_signo}).encode() + b"\n")

    threading.Thread(target=relay, daemon=True).start()
    line = reader.readline()
    end = json.loads(line) if line else {"exit": 1}
    if end.get("signal"):
        signal.signal(end["signal"], signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [end["signal"]])
        os.kill(os.getpid(), end["signal"])
    return int(end.get("exit", 1))


# -- the supervisor's side: judge, then pass the connection to the helper -----------


def serve_request(sup, conn: socket.socket, request: dict, fds: list[int], pidfd: int, state) -> None:
    """One privileged request from the caller pidfd names, judged state when
    it connected (control.py); on yes, the helper owns the connection from
    here on."""
    from peninsula.shell.control import send
    from peninsula.kernel import target
    from peninsula.shell.callers import still_alive

    helper = getattr(sup, "privileged_helper", None)
    name = os.path.basename(str(request.get("path", "?")))
    try:
        if state.confined:
            send(conn, {"error": REFUSAL.format(name=name, state=state.describe())})
            return
        pid = target.pidfd_target(os.getpid(), pidfd)
        if pid <= 0:
            raise ProcessLookupError("the caller has exited")
        group, umask = _process_group(pid), _umask(pid)
        # Read by pid: the caller still being alive proves the pid was not
        # reused meanwhile.
        still_alive(pidfd)
        if helper is None:
            send(conn, {"error": f"{name}: this session has no helper for privileged programs"})
            return
        argv, env, path = request.get("argv"), request.get("env"), request.get("path")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)
                and isinstance(env, dict) and isinstance(path, str) and len(fds) == 4):
            send(conn, {"error": "privileged: malformed request"})
            return
        message = {"path": path, "argv": argv, "env": outside_env(env, sup.session_dir), "pgid": group,
                   "umask": umask}
        with sup.privileged_lock:
            socket.send_fds(helper, [json.dumps(message).encode()], [*fds, conn.fileno()])
    except (OSError, ValueError) as err:
        send(conn, {"error": f"{name}: cannot judge the caller: {err}"})
    finally:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _umask(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise ValueError("the caller's umask is unknown")


def _process_group(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return int(fields[2])  # field 5, pgrp


# -- the helper, in `peninsula shell` (no no_new_privs, no Landlock) ---------------


def helper_loop(sock: socket.socket) -> None:
    """Start each program the supervisor passes on; only the supervisor holds
    the other end of this socket."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 8)
        except OSError:
            return
        if not data:
            return
        threading.Thread(target=_run_one, args=(json.loads(data), fds), daemon=True).start()


def _run_one(message: dict, fds: list[int]) -> None:
    from peninsula.shell.control import send

    stdio, cwd, conn = fds[:3], fds[3], socket.socket(fileno=fds[4])
    name = message["argv"][0]
    exe = -1
    try:
        with conn:
            try:
                exe = os.open(message["path"], os.O_RDONLY | os.O_CLOEXEC)
                if not gains_privilege(exe):
                    send(conn, {"error": f"{name}: {message['path']} is not a setuid, setgid or capability program"})
                    return
                if _no_new_privs():
                    send(conn, {"error": f"{name}: this session was started under no_new_privs: nothing can gain privilege"})
                    return
                pid, pidfd = _start(message, stdio, cwd, exe)
            except OSError as err:
                send(conn, {"error": f"{name}: {err.strerror or err}"})
                return
            send(conn, {"pid": pid})
            relay = threading.Thread(target=_relay_signals, args=(conn, pidfd), daemon=True)
            relay.start()
            _, status = os.waitpid(pid, 0)
            if os.WIFSIGNALED(status):
                send(conn, {"exit": 128 + os.WTERMSIG(status), "signal": os.WTERMSIG(status)})
            else:
                send(conn, {"exit": os.WEXITSTATUS(status)})
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # ends the relay, which owns the pidfd
            relay.join()
    finally:
        for fd in (*stdio, cwd, exe):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _no_new_privs() -> bool:
    with open("/proc/self/status") as handle:
        return any(line.split() == ["NoNewPrivs:", "1"] for line in handle)


def _start(message: dict, stdio: list[int], cwd: int, exe: int) -> tuple[int, int]:
    """Fork the program into the caller's process group; errors before exec
    come back through a close-on-exec pipe."""
    error_r, error_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        stage = "pgid"
        try:
            os.setpgid(0, message["pgid"])  # EPERM unless in the terminal's session
            stage = "exec"
            for number, fd in enumerate(stdio):
                os.dup2(fd, number)
            os.fchdir(cwd)
            os.umask(message["umask"])
            # Received fds are inheritable: keep none of the helper's.
            os.closerange(3, min(exe, error_w))
            os.closerange(min(exe, error_w) + 1, max(exe, error_w))
            os.closerange(max(exe, error_w) + 1, os.sysconf("SC_OPEN_MAX"))
            for sig in range(1, signal.NSIG):
                with contextlib.suppress(OSError, ValueError):
                    signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.execve(exe, message["argv"], message["env"])
        except OSError as err:
            with contextlib.suppress(OSError):
                os.write(error_w, f"{stage} {err.errno}".encode())
        finally:
            os._exit(127)
    os.close(error_w)
    failed = os.read(error_r, 64)
    os.close(error_r)
    if failed:
        os.waitpid(pid, 0)
        stage, code = failed.decode().split()
        if stage == "pgid":
            raise OSError(int(code), "the caller is not in the terminal session of this shell; cannot share its terminal")
        raise OSError(int(code), os.strerror(int(code)))
    return pid, os.pidfd_open(pid)


def _relay_signals(conn: socket.socket, pidfd: int) -> None:
    allowed = {int(s) for s in RELAYED}
    try:
        with contextlib.suppress(OSError, ValueError):
            for line in conn.makefile("rb"):
                number = json.loads(line).get("signal")
                if number in allowed:
                    signal.pidfd_send_signal(pidfd, number)
    finally:
        os.close(pidfd)
