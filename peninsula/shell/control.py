"""The session's control channel: a unix socket in the session directory.

One JSON request line per connection, one JSON answer line back. The
caller is the process that connected, known by the pidfd the kernel took at
connect (SO_PEERPIDFD), never by the request, and nothing a
caller sends can relax the policy: status and check only answer questions;
exec (join.py) starts a command under the session's current policy and is
refused to confined callers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket


def send(conn, reply: dict) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(reply).encode() + b"\n")


def ask(request: dict, session_dir: str | None = None, timeout: float = 3.0) -> dict | None:
    """Ask the session's supervisor (None when not in a session)."""
    from peninsula.shell.environ import ENV_SESSION_DIR
    from peninsula.shell.sessiondir import served_by_supervisor

    # A session found by listing the root is checked for a planted listener;
    # our own (named by the environment, which a project's .envrc may set)
    # must be served by our own supervisor.
    listed = session_dir is not None
    session_dir = session_dir or os.environ.get(ENV_SESSION_DIR)
    if not session_dir:
        return None
    path = os.path.join(session_dir, "control.sock")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            if not served_by_supervisor(conn, ours_only=not listed):
                return None  # a socket planted at the name: not a session
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


