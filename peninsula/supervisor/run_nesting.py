"""`peninsula run` nested inside `peninsula run` (issue 14): the outer run's side.

The outer run's supervisor judges a nested run's command, and all it
starts, by Both(the outer run's policy, the nested run's own), with
nesting.py's machinery, as a shell session's supervisor does.

The channel is a SOCK_SEQPACKET socketpair made by this supervisor before
the command starts; the command inherits one end (its number in
ENV_NEST_FD) and so does everything it starts. Nothing outside the run
holds it: a socketpair has no name to connect to, so no other user and
no other sandbox can reach it. A process of the run can only send on it,
and every request can only tighten: it names its command by a pidfd,
and the command must be the requester's child.

The requester is named by the kernel, never by the request: the
credentials the kernel attaches to each message (SO_PASSCRED: the
sender's pid, which only CAP_SYS_ADMIN can set otherwise), and the
creator of the socketpair the reply goes to (SO_PEERPIDFD, which nothing
can set): both must name the same living process. The reply goes over
that private socketpair, so no other process of the run can read it.

Requests are served in the supervisor's main thread, between two trapped
calls: never while the compiled hot path waits in C. So after sending,
the head makes one trapped call that only Python answers (POKE: a connect
of an unbound unix datagram socket to AF_UNSPEC, which the kernel
answers 0), and the supervisor reads the channel after each request it
handles. The first nest request swaps the compiled engine of one policy
for one that asks which policy a process is under (judge): a run that
never nests pays nothing.

Which state a process is in (state_of): its own answer, remembered per
(pid, start time) when first seen; else its parent's. The nested run's
head forks only its command, so any other child of a head is an orphan of
the command's tree (or made with CLONE_PARENT) and is judged nested. A
process whose line reaches this supervisor other than through the run's
command is an orphan whose line broke (its head died first): once a run
has nested, one that started since then is judged by every nested policy
at once (ORPHAN), as it may come from any of them.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import socket
import struct
import threading
from dataclasses import dataclass

from peninsula.kernel import target
from peninsula.policy import engine as policy
from peninsula.supervisor import fastpath
from peninsula.supervisor import nesting
from peninsula.supervisor.loop import Supervisor

ENV_NEST_FD = "PENINSULA_RUN_NEST_FD"
SO_PEERPIDFD = 77
MAX_MESSAGE = 1 << 16
MAX_FDS = 6  # the reply socket, then nest's pidfd, stderr and log
READS_PER_TURN = 16  # requests read between two trapped calls


@dataclass(frozen=True)
class RunState:
    """The state of a process of the outer run that is in no nested run."""

    name: str
    strict: bool

    @property
    def confined(self) -> bool:
        return True

    @property
    def project(self) -> str | None:
        return None

    def describe(self) -> str:
        return self.name


OUTER = RunState("this peninsula run", False)
ORPHAN = RunState("an orphan of this peninsula run started since it nested (judged by every nested run's policy)", True)


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """(the supervisor's end, the command's end)."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    mine.setblocking(False)
    return mine, theirs


class NestingRunSupervisor(Supervisor):
    """The run's supervisor, which also serves nest requests on channel."""

    def __init__(self, listener_fd, pol, notices, verbose, sockets, command: tuple[int, int], channel: socket.socket,
                 kernel_judges_names: bool):
        super().__init__(listener_fd, pol, notices, verbose, sockets=sockets)
        self.base = pol
        self.channel = channel
        self.kernel_judges_names = kernel_judges_names
        self.me = os.getpid()
        # Re-entrant: a connect finished in a thread holds it while asking
        # listener_inside and confinement_covers, which take it themselves.
        self.lock = threading.RLock()
        self.answers: dict[tuple[int, int], object] = {command: OUTER}  # (pid, start time) of the run's command
        self.nest_heads: dict[tuple[int, int], nesting.NestedState] = {}
        self.nests: dict = {}
        self.policies: dict = {}
        self.broker = None  # a nested command's notices go to the run's stream
        self.nested_since: int | None = None  # the clock tick of the first nest request granted
        self.inners: dict[policy.Policy, None] = {}  # every nested run's own policy, for ORPHAN

    # -- judgement -------------------------------------------------------------

    def state_of(self, tgid: int):
        chain: list[tuple[int, int]] = []
        pid, state = tgid, ORPHAN
        while True:
            try:
                key = (pid, target.start_time(pid))
            except (OSError, ValueError, IndexError):
                break  # vanished mid-walk: strictest
            if chain and key in self.nest_heads:
                state = self.nest_heads[key]
                break
            known = self.answers.get(key)
            if known is not None:
                state = known
                break
            chain.append(key)
            parent = target.parent_of(pid)
            if parent == self.me:
                # Not the command (it is in answers): an orphan, or made with
                # CLONE_PARENT. Before the first nest none can come from one;
                # a tie inside one tick is the stricter.
                state = OUTER if self.nested_since is None or chain[0][1] < self.nested_since else ORPHAN
                break
            if parent <= 1:
                break  # not beneath us any more: strictest
            pid = parent
        for key in chain:
            self.answers[key] = state
        if len(self.answers) > nesting.MAX_NESTS * 8:
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

    def policy_for(self, state):
        if state is OUTER:
            return self.base
        if isinstance(state, nesting.NestedState):
            return nesting.policy_of(self, state)
        pol = self.policies.get(ORPHAN)
        if pol is None:
            pol = self.base
            for inner in self.inners:
                pol = policy.Both(pol, inner)
            self.policies[ORPHAN] = pol
        return pol

    def supervises(self, pid: int) -> bool:
        return target.filtered(pid) and target.descends_from(pid, self.me)

    def dispatch(self, req, handler):
        if self.nested_since is not None:
            with self.lock:
                self.policy = self.policy_for(self.state_of(req.tgid))
        return handler(req)

    def judge(self, tid: int) -> tuple[int, int]:
        """For the compiled hot path once the run has nested: slot 0 (the
        run's own policy) or -2, Python's (Both() is judged in Python)."""
        with self.lock:
            try:
                tgid = target.Status(tid).tgid
            except (OSError, KeyError, ValueError):
                return -2, 0
            return (0 if self.state_of(tgid) is OUTER else -2), tgid

    def listener_inside(self, caller_tgid: int, pid: int) -> bool:
        """Inside the caller's confinement: in this run, and judged at least
        as strictly as the caller (a nested command may not reach a server
        of the outer run, which writes by the outer policy)."""
        if not super().listener_inside(caller_tgid, pid):
            return False
        if self.nested_since is None:
            return True
        from peninsula.supervisor.handlers.lineage import _at_least_as_strict

        with self.lock:
            return _at_least_as_strict(self.state_of(pid), self.state_of(caller_tgid))

    def confinement_of(self, tgid: int):
        with self.lock:
            return self.state_of(tgid)

    def confinement_covers(self, caller_tgid: int, confinement) -> bool:
        """As listener_inside: judged at least as strictly as the caller."""
        if self.nested_since is None:
            return True
        from peninsula.supervisor.handlers.lineage import _at_least_as_strict

        with self.lock:
            return _at_least_as_strict(confinement, self.state_of(caller_tgid))

    # -- the channel ---------------------------------------------------------------

    def serve(self) -> None:
        self.poller.register(self.channel.fileno(), select.POLLIN)  # for when Python waits, not C
        super().serve()

    def on_event(self, fd: int, mask: int) -> None:
        if fd != self.channel.fileno():
            return super().on_event(fd, mask)
        if mask & select.POLLIN:
            self.read_channel()
        else:  # every end in the run is closed
            self.poller.unregister(fd)

    def handle_one(self) -> None:
        super().handle_one()
        self.read_channel()

    def read_channel(self) -> None:
        for _ in range(READS_PER_TURN):
            try:
                data, ancdata, flags, _ = self.channel.recvmsg(
                    MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4) + socket.CMSG_SPACE(12), socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not data and not ancdata:
                return
            fds, sender = _unpack(ancdata)
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or not fds or sender is None:
                for fd in fds:  # nowhere to answer, or nobody to answer
                    os.close(fd)
                continue
            try:
                reply_sock = socket.socket(fileno=fds[0])
            except OSError:  # not a socket
                for fd in fds:
                    os.close(fd)
                continue
            with reply_sock:
                try:
                    reply = self._answer_request(sender, reply_sock, data, fds[1:])  # it closes fds[1:]
                except Exception as err:  # a bug must cost one request, not the sandbox
                    self.errors += 1
                    reply = {"error": f"nest: {err!r}"}
                if reply is not None:
                    with contextlib.suppress(OSError):
                        reply_sock.send(json.dumps(reply).encode(), socket.MSG_DONTWAIT)

    def _answer_request(self, sender: int, reply_sock: socket.socket, data: bytes, fds: list[int]) -> dict | None:
        caller = _requester(sender, reply_sock)
        if caller is None:
            for fd in fds:
                os.close(fd)
            return None  # not a private socketpair of the sender's: answer nobody
        try:
            request = json.loads(data)
            op = request.get("op") if isinstance(request, dict) else None
        except ValueError:
            op = None
        if op != "nest":
            for fd in fds:
                os.close(fd)
        if op == "nest":
            return self._nest(caller, request, fds)
        if op == "nest-end":
            return nesting.answer_nest_end(self, caller, request)
        if op == "check":
            with self.lock:
                pol = self.policy_for(self.state_of(caller))
            decision = policy.decide_write(pol, str(request.get("path", "")))
            return {"allow": decision.allow, "reason": decision.reason}
        return {"error": f"unknown request {op!r}"}

    def _nest(self, caller: int, request: dict, fds: list[int]) -> dict:
        if self.kernel_judges_names:
            for fd in fds:
                os.close(fd)
            return {"error": "cannot nest inside this peninsula run: it was started with --fast, so Landlock alone "
                             "judges its creates and renames, by its own roots (run the outer one without --fast)"}
        if self.fast is not None and self.nested_since is None:
            # Python's judgement of who is nested must reach the hot path now,
            # before the nested command starts: we are between two requests.
            engine = fastpath.engine_judged_by(self.judge)
            engine.add_policy(**fastpath.spec(self.base))
            self.fast = engine
        since = target.now_tick()
        reply = nesting.answer_nest(self, caller, request, fds)
        if "error" not in reply:
            if self.nested_since is None:
                self.nested_since = since
            with self.lock:
                for state in self.nest_heads.values():
                    self.inners.setdefault(state.inner, None)
                self.policies.pop(ORPHAN, None)
        return reply


def _unpack(ancdata) -> tuple[list[int], int | None]:
    fds: list[int] = []
    sender = None
    for level, kind, data in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(array.array("i", data[:usable]))
        elif kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            sender = struct.unpack("3i", data[:12])[0]
    return fds, sender


def _requester(sender: int, reply_sock: socket.socket) -> int | None:
    """The sender, when the kernel's two namings of it agree: the pid it
    attached to the message and the creator of the socketpair it gave for
    the reply (whose peer is that very process; a connected socket's peer
    is whoever accepted it, a socketpair's is the process that made it)."""
    try:
        if (reply_sock.family, reply_sock.type) != (socket.AF_UNIX, socket.SOCK_SEQPACKET):
            return None
        pidfd = reply_sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        return None
    try:
        creator = target.pidfd_target(os.getpid(), pidfd)
        return sender if creator == sender and sender > 1 else None
    except (OSError, ValueError):
        return None
    finally:
        os.close(pidfd)
