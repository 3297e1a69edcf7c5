"""Judging a caller that belongs to another session (`peninsula exec
--session A` typed in a terminal whose shell runs under session B).

Session A cannot trace such a caller to its own shell, so by itself it could
only judge it strictest. Instead it asks the caller's own supervisor. Which
supervisor that is comes from the kernel, not from anything the caller says
or any file a confined process could plant: walking up from the caller, the
first ancestor under no seccomp filter is outside every sandbox (a confined
process can never shed its filter), so it is the supervisor of the caller's
sandbox. A session's control socket is used only when SO_PEERCRED says it is
served by exactly that process; its answer decides, and a caller it calls
confined stays refused."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct

from . import target

MAX_DEPTH = 256


def seccomp_filters(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Seccomp_filters:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def descends_from(pid: int, ancestors: set[int]) -> bool:
    for _ in range(MAX_DEPTH):
        if pid in ancestors:
            return True
        if pid <= 1:
            return False
        pid = target.parent_of(pid)
    return False


def unfiltered_ancestor(pid: int) -> int | None:
    """The nearest ancestor of pid under no seccomp filter."""
    current = pid
    for _ in range(MAX_DEPTH):
        current = target.parent_of(current)
        if current <= 1:
            return None
        if seccomp_filters(current) == 0:
            return current
    return None


def judge_foreign(pid: int) -> dict | None:
    """{"confined": bool, "state": str, "session": id} from the session that
    supervises pid, or None when no session vouches for it."""
    from .session import session_root

    try:
        start = target.start_time(pid)
    except (OSError, ValueError, IndexError):
        return None
    supervisor = unfiltered_ancestor(pid)
    if supervisor is None:
        return None
    root = session_root()
    try:
        names = os.listdir(root)
    except OSError:
        return None
    for name in names:
        path = os.path.join(root, name, "control.sock")
        with contextlib.suppress(OSError, ValueError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(3.0)
            conn.connect(path)
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            if struct.unpack("3i", creds)[0] != supervisor:
                continue
            conn.sendall(json.dumps({"op": "judge", "pid": pid, "start": start}).encode() + b"\n")
            data = conn.makefile("rb").readline()
            reply = json.loads(data)
            if target.start_time(pid) != start or not isinstance(reply.get("confined"), bool):
                return None
            return {"confined": reply["confined"], "state": str(reply.get("state")), "session": name}
    return None


def answer_judge(sup, request: dict) -> dict:
    """Another session asks how we judge one of our processes."""
    from .join import caller_state

    try:
        pid, start = int(request["pid"]), int(request["start"])
        if target.start_time(pid) != start:
            return {"error": "no such process"}
    except (KeyError, TypeError, ValueError, OSError, IndexError):
        return {"error": "no such process"}
    if not descends_from(pid, {sup.shell_pid, *sup.own_pids}):
        return {"error": "not a process of this session"}
    state = caller_state(sup, pid)
    return {"confined": state.confined, "state": state.describe()}
