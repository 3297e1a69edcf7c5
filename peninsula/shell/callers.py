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
import errno
import json
import os
import signal
import socket
import struct
from dataclasses import dataclass

from peninsula.kernel import target
from peninsula.kernel.target import seccomp_filters
from peninsula.policy.timeline import ShellState
from peninsula.shell.sessiondir import SO_PEERPIDFD

MAX_DEPTH = 256


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
    from peninsula.config.defaults import session_root

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
    pass

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


def peer_pidfd(conn: socket.socket) -> int | None:
    """A pidfd of the process that connected to conn, which the kernel took
    at connect (SO_PEERPIDFD): it names that process and no other, whatever
    happens to its pid. None when that process is this supervisor, which
    connects for confined processes (sockets.py) and tags the connection."""
    try:
        pidfd = conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError as err:
        if err.errno != errno.ENOPROTOOPT:
            raise
        # Before Linux 6.5: a pidfd taken now, at accept, of the pid the
        # kernel recorded at connect (a pid reused in between is the gap).
        pid = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pidfd = os.pidfd_open(struct.unpack("3i", pid)[0])
    try:
        if target.pidfd_target(os.getpid(), pidfd) == os.getpid():
            os.close(pidfd)
            return None
    except BaseException:
        os.close(pidfd)
        raise
    return pidfd


def judge_pidfd(sup, pidfd: int):
    """How the supervisor judges the process pidfd names.

    The pid it has now is read from the pidfd, the facts from /proc, and
    then the pidfd must still name a live (or unreaped) process: while it
    does, its pid cannot have been given to anyone else, so the facts were
    the caller's. A caller that exited is refused, not guessed at."""
    pid = target.pidfd_target(os.getpid(), pidfd)
    if pid <= 0:
        raise OSError(errno.ESRCH, "the caller has exited")
    state = caller_state(sup, pid)
    if state.confined:
        state = _own_session_view(sup, pid, state)
    still_alive(pidfd)
    return state


def still_alive(pidfd: int) -> None:
    """Raise unless pidfd still names a live (or unreaped) process: then
    the facts read by its pid before this call were its own."""
    try:
        signal.pidfd_send_signal(pidfd, 0)
    except PermissionError:
        pass  # another user's process: the kernel looked it up, so it is there
    except ProcessLookupError:
        raise OSError(errno.ESRCH, "the caller has exited") from None


def caller_state(sup, pid: int):
    """How the supervisor judges a caller; a process under no seccomp filter
    at all is outside every sandbox, hence not confined. (judge_pidfd says
    whether pid was still the caller when this was read.)"""
    from peninsula.policy.timeline import UNCONFINED

    if seccomp_filters(pid) == 0:
        return UNCONFINED
    with sup.lock:
        return sup.state_of(pid)


def _own_session_view(sup, caller: int, state):
    """A caller we judge confined may be a process of another session that
    judges it not confined (judge_foreign below): that session's word decides.
    Asked while judge_pidfd still holds the caller's pidfd, so the answer is
    about the process that connected."""
    from peninsula.policy.timeline import UNCONFINED

    if not hasattr(sup, "shell_pid") or descends_from(caller, {sup.shell_pid, *sup.own_pids}):
        return state
    foreign = judge_foreign(caller)
    if foreign is None:
        return state
    if foreign["confined"]:
        return ForeignState(strict=True, told=f"{foreign['state']}, in session {foreign['session']}")
    return UNCONFINED


@dataclass(frozen=True)
class ForeignState(ShellState):
    """Confined, as another session judged its own process (told: its words)."""

    told: str = ""

    def describe(self) -> str:
        return self.told
