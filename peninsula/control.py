"""The session's control channel: a unix socket in the session directory.

One JSON request line per connection, one JSON answer line back. The
caller's pid comes from SO_PEERCRED, never from the request, and nothing a
caller sends can relax the policy: status and check only answer questions;
exec (join.py) starts a command under the session's current policy and is
refused to confined callers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading

MAX_REQUEST = 1 << 20
MAX_FDS = 8


def serve_control(sup, sock_path: str) -> None:
    """Answer status/check questions on a unix socket, one JSON line each.

    The caller's pid comes from SO_PEERCRED, never from the request."""
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
    fds: list[int] = []
    with conn:
        conn.settimeout(2.0)
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid = struct.unpack("3i", creds)[0]
            data = b""
            while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
                chunk, more, _, _ = socket.recv_fds(conn, 65536, MAX_FDS)
                fds.extend(more)
                if not chunk:
                    break
                data += chunk
            request = json.loads(data or b"{}")
            op = request.get("op")
            if op == "status":
                reply = sup.describe(pid)
            elif op == "check":
                reply = sup.check(pid, str(request.get("path", "")))
            elif op == "judge" and hasattr(sup, "shell_pid"):
                from .crossjudge import answer_judge

                reply = answer_judge(sup, request)
            elif op in ("nest", "nest-end") and hasattr(sup, "shell_pid"):
                from .nested import answer_nest, answer_nest_end

                reply = answer_nest(sup, pid, request, fds) if op == "nest" else answer_nest_end(sup, pid, request)
                fds = []  # answer_nest closes them
            elif op == "exec" and getattr(sup, "broker", None) is not None:
                conn.settimeout(None)
                sup.broker.serve_exec(sup, conn, pid, request, fds)
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
        send(conn, reply)


def send(conn, reply: dict) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(reply).encode() + b"\n")


def ask(request: dict, session_dir: str | None = None, timeout: float = 3.0) -> dict | None:
    """Ask the session's supervisor (None when not in a session)."""
    from .session import ENV_SESSION_DIR

    session_dir = session_dir or os.environ.get(ENV_SESSION_DIR)
    if not session_dir:
        return None
    path = os.path.join(session_dir, "control.sock")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            conn.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return json.loads(data) if data else None


