"""Serving the control channel (see control.py): each connection is judged by
the pidfd the kernel took at connect, then answered with one line."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
from peninsula.shell.control import send

MAX_REQUEST = 1 << 20
MAX_FDS = 8
REQUEST_DEADLINE = 2.0  # seconds from accept for the whole request line


def serve_control(sup, sock_path: str) -> None:
    """Answer status/check questions on a unix socket, one JSON line each."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock_path)
    server.bind(sock_path)
    os.chmod(sock_path, 0o600)
    server.listen(8)

    def loop():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_answer_control, args=(sup, conn), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def _answer_control(sup, conn) -> None:
    from peninsula.shell.callers import judge_pidfd, peer_pidfd

    fds: list[int] = []
    pidfd = None
    with conn:
        try:
            # The caller is judged now, by the process that connected (a
            # pidfd the kernel took at connect), before reading its request:
            # a pid read later may belong to another process by then.
            pidfd = peer_pidfd(conn)
            data = b""
            if pidfd is None:
                # A confined caller's connect was made by this supervisor
                # (sockets.py), which then named the caller on the line first.
                pidfd, data = _tagged_caller(sup, conn, fds)
            state = judge_pidfd(sup, pidfd)  # the pidfd is held until the answer
            deadline = time.monotonic() + REQUEST_DEADLINE
            while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OSError(errno.ETIMEDOUT, "the request did not arrive in time")
                conn.settimeout(left)
                try:
                    chunk, more, _, _ = socket.recv_fds(conn, 65536, MAX_FDS)
                except TimeoutError:
                    raise OSError(errno.ETIMEDOUT, "the request did not arrive in time") from None
                fds.extend(more)
                if not chunk:
                    break
                data += chunk
            conn.settimeout(REQUEST_DEADLINE)
            request = json.loads(data or b"{}")
            op = request.get("op")
            if op == "status":
                reply = sup.describe(state)
            elif op == "check":
                reply = sup.check(state, str(request.get("path", "")))
            elif op == "judge" and hasattr(sup, "shell_pid"):
                from peninsula.shell.callers import answer_judge

                reply = answer_judge(sup, request)
            elif op == "check_connect":
                reply = sup.check_connect(state, str(request.get("path", "")))
            elif op == "privileged":
                from peninsula.shell.privileged import serve_request

                conn.settimeout(None)
                serve_request(sup, conn, request, fds, pidfd, state)
                fds = []  # closed there
                return
            elif op in ("nest", "nest-end") and hasattr(sup, "shell_pid"):
                from peninsula.supervisor.nesting import answer_nest, answer_nest_end
                from peninsula.kernel.target import pidfd_target

                caller = pidfd_target(os.getpid(), pidfd)  # the process judged at accept
                reply = answer_nest(sup, caller, request, fds) if op == "nest" else answer_nest_end(sup, caller, request)
                fds = []  # answer_nest closes them
            elif op == "exec" and getattr(sup, "broker", None) is not None:
                conn.settimeout(None)
                sup.broker.serve_exec(sup, conn, state, request, fds)
                fds = []  # handed over
                return
            else:
                reply = {"error": f"unknown request {op!r}"}
        except (OSError, ValueError) as err:
            reply = {"error": str(err)}
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if pidfd is not None:
                os.close(pidfd)
        send(conn, reply)


def _tagged_caller(sup, conn, fds: list[int]) -> tuple[int, bytes]:
    """The caller named by the supervisor's tag line, and what follows it
    (fds the caller sent with its request may come in the same read: kept
    in fds)."""
    import hmac

    conn.settimeout(REQUEST_DEADLINE)
    data = b""
    while b"\n" not in data and len(data) < 256:
        chunk, more, _, _ = socket.recv_fds(conn, 256 - len(data), MAX_FDS)
        fds.extend(more)
        if not chunk:
            break
        data += chunk
    line, _, rest = data.partition(b"\n")
    parts = line.split()
    token = getattr(sup, "control_token", None)
    if len(parts) != 3 or parts[0] != b"peninsula-caller" or token is None or not hmac.compare_digest(parts[1], token):
        raise ValueError("connection from the supervisor without its tag")
    pidfd = sup.collect_tagged_caller(parts[2])
    if pidfd is None:
        raise ValueError("connection from the supervisor with an unknown tag")
    return pidfd, rest
