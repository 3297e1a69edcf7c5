"""`peninsula run` inside a supervised shell session (issue 14): the session's
side of the channel. The run hands its command to the session's supervisor
over the session's control socket, which judges each caller by the pidfd
the kernel took at connect (control_server.py); the head is
sandbox/nested.py, the judgement supervisor/nesting.py.
"""

from __future__ import annotations

import json
import os
import socket


def session_for_nesting() -> str | None:
    """The session directory when this process runs under a session's
    filter (so a run of its own would get EBUSY), else None."""
    from peninsula.shell.environ import ENV_SESSION_DIR

    session_dir = os.environ.get(ENV_SESSION_DIR)
    if not session_dir or not os.path.exists(os.path.join(session_dir, "control.sock")):
        return None
    from peninsula.kernel.target import seccomp_filters

    return session_dir if (seccomp_filters("self") or 0) > 0 else None


class SessionChannel:
    """Nest requests to the session's supervisor, over its control socket."""

    whose = "the session's"
    where = "this supervised session"
    outside = "the session"
    env: dict = {}

    def __init__(self, session_dir: str):
        self.sock_path = os.path.join(session_dir, "control.sock")

    def ask(self, request: dict, fds: list[int]) -> dict | None:
        from peninsula.shell.sessiondir import served_by_supervisor

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            try:
                conn.settimeout(10)
                conn.connect(self.sock_path)
                # Found by the environment, which a project's .envrc may set:
                # only our own supervisor's answer may stand for the narrowing.
                if not served_by_supervisor(conn, ours_only=True):
                    return None
                socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], fds)
                data = conn.makefile("rb").readline()
            except OSError:
                return None
        return json.loads(data) if data else None

    def check(self, path: str) -> dict | None:
        from peninsula.shell.control import ask

        return ask({"op": "check", "path": path})
