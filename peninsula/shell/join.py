"""Joining a live session: `peninsula exec --session ID -- CMD`.

A new process cannot enter an existing seccomp filter, and the supervisor
can read only processes whose Landlock domain nests inside its own. So each
shell session keeps a zygote: a child of the supervisor, forked right after
the supervisor restricted itself, that forks the joining command on request.
The command confines itself (baseline + scoping + a filter of its own) and
hands its new listener to the supervisor, which serves it beside the
shell's and judges the command by the session's state at the moment it
joined. The caller (an IDE terminal, say) lends its stdin/stdout/stderr and
cwd, forwards signals, and gets the exit status.

    caller ── control socket ──> supervisor ── zygote ── command
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import signal
import socket
import threading

from peninsula.kernel import target
from peninsula.shell.control import send
from peninsula.kernel.seccomp import Listener

REFUSAL = (
    "refused: the caller runs confined ({state}); a confined process may not start "
    "commands under the session's current policy, which may be laxer than its own"
)


class Broker:
    """The supervisor's side: talks to the zygote, adds listeners to the loop."""

    def __init__(self, zygote_sock: socket.socket, wake_w: int):
        self.zygote = zygote_sock
        self.wake_w = wake_w
        self.pending: "queue.Queue[Listener]" = queue.Queue()
        self.exits: dict[int, "queue.Queue[int]"] = {}
        self.send_lock = threading.Lock()
        self.started: dict[int, "queue.Queue[int]"] = {}
        self.next_id = 0
        self.streams: dict[int, int] = {}  # joined pid -> a dup of its caller's stderr
        self.streams_lock = threading.Lock()
        threading.Thread(target=self._read_zygote, daemon=True).start()

    def stream_for(self, tgid: int) -> int | None:
        """A new fd on the caller's stderr when tgid is (a descendant of) a
        joined command (the receiver closes it), else None."""
        if not self.streams:
            return None
        from peninsula.shell.callers import MAX_DEPTH

        pid = tgid
        for _ in range(MAX_DEPTH):
            with self.streams_lock:
                if pid in self.streams:
                    return os.dup(self.streams[pid])
            if pid <= 1:
                return None
            pid = target.parent_of(pid)
        return None

    def _read_zygote(self) -> None:
        while True:
            try:
                data = self.zygote.recv(65536)
            except OSError:
                return
            if not data:
                return
            message = json.loads(data)
            if "started" in message:
                self.started.pop(message["id"]).put(message["started"])
            elif "exited" in message:
                waiter = self.exits.pop(message["exited"], None)
                if waiter is not None:
                    waiter.put(message["code"])

    def serve_exec(self, sup, conn, state, request: dict, fds: list[int]) -> None:
        """Run one exec request, from a caller judged state, to the end (in a control thread)."""
        try:
            if state.confined:
                send(conn, {"error": REFUSAL.format(state=state.describe())})
                return
            argv, env = request.get("argv"), request.get("env")
            if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
                send(conn, {"error": "exec: no command given"})
                return
            if not isinstance(env, dict) or len(fds) != 4:
                send(conn, {"error": "exec: malformed request"})
                return
            with sup.lock:
                joined_state = sup.timeline.current
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            with ours:
                pid = self._spawn(argv, env, fds + [theirs.fileno()])
                theirs.close()
                msg, got, _, _ = socket.recv_fds(ours, 4096, 1)
                if not got:
                    send(conn, {"error": msg.decode("utf-8", "replace") or "exec: setup failed"})
                    return
                with sup.lock:
                    sup.answers[(pid, target.start_time(pid))] = joined_state
                with self.streams_lock:
                    self.streams[pid] = os.dup(fds[2])  # its denial notices go to the caller
                exited: "queue.Queue[int]" = queue.Queue()
                self.exits[pid] = exited
                self.pending.put(Listener(got[0]))
                os.write(self.wake_w, b"x")
                ours.send(b"go")
            send(conn, {"pid": pid, "state": joined_state.describe()})
            send(conn, {"exit": exited.get()})
            with self.streams_lock, contextlib.suppress(KeyError, OSError):
                os.close(self.streams.pop(pid))
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _spawn(self, argv, env, fds) -> int:
        with self.send_lock:
            self.next_id += 1
            ident = self.next_id
            started: "queue.Queue[int]" = queue.Queue()
            self.started[ident] = started
            socket.send_fds(self.zygote, [json.dumps({"id": ident, "argv": argv, "env": env}).encode()], fds)
        return started.get(timeout=30)


def zygote_main(sock: socket.socket, roots, program) -> None:
    """The zygote: fork a confined command for each request, report exits."""
    lock = threading.Lock()

    def report(message: dict) -> None:
        with lock, contextlib.suppress(OSError):
            sock.send(json.dumps(message).encode())

    def reap(pid: int) -> None:
        _, status = os.waitpid(pid, 0)
        report({"exited": pid, "code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)})

    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 8)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            _command_main(request, fds, roots, program)
        for fd in fds:
            os.close(fd)
        report({"id": request["id"], "started": pid})
        threading.Thread(target=reap, args=(pid,), daemon=True).start()


def _command_main(request, fds, roots, program) -> None:
    """The joining command: take the caller's stdio and cwd, confine, exec."""
    from peninsula.kernel import landlock as baseline
    from peninsula.kernel import libc
    from peninsula.sandbox.handoff import load_and_hand_over
    from peninsula.sandbox.launch import setup_message

    stdin, stdout, stderr, cwd, handoff = fds
    code = 125
    sock = socket.socket(fileno=handoff)
    try:
        os.setsid()  # the caller's terminal is not ours to control
        for number, fd in enumerate((stdin, stdout, stderr)):
            os.dup2(fd, number)
        os.fchdir(cwd)
        for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        env = {str(k): str(v) for k, v in request["env"].items()}
        env.pop("PENINSULA_SHELL_PID", None)
        libc.prctl_set_no_new_privs()
        baseline.restrict_self_if_available(roots, scoped=True)
        load_and_hand_over(program, sock)
        if sock.recv(16) != b"go":
            os._exit(125)
        argv = request["argv"]
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as err:
            os.write(2, f"peninsula: cannot run {argv[0]}: {err.strerror}\n".encode())
            code = 127 if err.errno == errno.ENOENT else 126
    except OSError as err:
        with contextlib.suppress(OSError):
            sock.send(f"exec: {setup_message(err)}".encode())
    finally:
        os._exit(code)


def run_joined(session_dir: str, argv: list[str]) -> int:
    """The caller's side: ask the session to run argv with our stdio and cwd."""
    from peninsula.shell.environ import ENV_SESSION, ENV_SESSION_DIR

    env = dict(os.environ)
    env[ENV_SESSION] = os.path.basename(session_dir)
    env[ENV_SESSION_DIR] = session_dir
    request = json.dumps({"op": "exec", "argv": argv, "env": env}).encode() + b"\n"
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(os.path.join(session_dir, "control.sock"))
    except OSError as err:
        raise JoinError(f"cannot reach session {os.path.basename(session_dir)}: {err.strerror}") from None
    from peninsula.shell.sessiondir import served_by_supervisor

    if not served_by_supervisor(conn):  # before our terminal and environment go anywhere
        os.close(cwd)
        raise JoinError(f"{session_dir}/control.sock is not served by a peninsula supervisor of yours "
                        "(a confined or foreign process listens there): refusing it")
    socket.send_fds(conn, [request], [0, 1, 2, cwd])
    os.close(cwd)
    reader = conn.makefile("rb")
    first = json.loads(reader.readline() or b"{}")
    if "error" in first or "pid" not in first:
        raise JoinError(first.get("error", "the session closed the connection"))
    pid = first["pid"]

    def forward(sig, _frame):
        with contextlib.suppress(OSError):
            os.kill(pid, sig)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    line = reader.readline()
    result = json.loads(line) if line else {}
    return int(result.get("exit", 123))


class JoinError(Exception):
    pass
