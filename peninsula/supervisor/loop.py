"""The supervisor: answers every trapped syscall until the sandbox is empty.

It serves until the listener reports POLLHUP (no process left under the
filter), not until the first child exits. No request may crash it: every
failure becomes an errno for the one request that caused it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import time

from peninsula.supervisor import table
from peninsula.supervisor.handlers import request
from peninsula.supervisor.handlers.records import Records
from peninsula.supervisor import fastpath
from peninsula.kernel import target
from peninsula.supervisor.denial_log import Collapser
from peninsula.kernel.seccomp import Listener

NOTICE_BURST = 10  # lines shown at once before rate limiting
NOTICE_PER_SECOND = 2.0
SEEN_LIMIT = 4096  # (process, path) pairs remembered for "one line each"


class DenialNotices:
    """One line per (process, path) on the terminal, rate-limited, and one
    JSON line per distinct denial in the log (repeats collapsed, the log
    rotated: see denial_log)."""

    def __init__(self, stream, log, quiet: bool):
        self.stream = stream
        # log: a denial_log.DenialLog, or None (not logged)
        self.log = None if log is None else Collapser(log)
        self.quiet = quiet
        # Insertion-ordered and bounded: a process refused millions of
        # different paths must not grow the supervisor without end.
        self.seen: dict[tuple[int, str], None] = {}
        self.tokens = float(NOTICE_BURST)
        self.last = time.monotonic()
        self.suppressed = 0
        self.count = 0
        self.first: list[dict] = []

    def record(self, tid: int, tgid: int, denied: request.Denied) -> None:
        self.count += 1
        name = target.comm(tgid)
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "pid": tgid,
            "tid": tid,
            "comm": name,
            "op": denied.op,
            "path": denied.path,
            "reason": denied.reason,
            "errno": errno.errorcode.get(denied.errno, str(denied.errno)),
        }
        if len(self.first) < 20:
            self.first.append(entry)
        if self.log is not None:
            self.log.add(entry)
        key = (tgid, denied.path)
        if self.quiet or not denied.noticed or key in self.seen:
            return
        self.seen[key] = None
        if len(self.seen) > SEEN_LIMIT:
            del self.seen[next(iter(self.seen))]  # forget the oldest
        now = time.monotonic()
        self.tokens = min(NOTICE_BURST, self.tokens + (now - self.last) * NOTICE_PER_SECOND)
        self.last = now
        if self.tokens < 1:
            self.suppressed += 1
            return
        self.tokens -= 1
        self._say(self._line(name, tgid, denied))

    def _line(self, name: str, pid: int, denied: request.Denied) -> str:
        hint = self.hint(pid, denied)
        return f"peninsula: denied {denied.op} of {denied.path} by {name} (pid {pid}): {denied.reason}{hint}"

    def hint(self, pid: int, denied: request.Denied) -> str:
        """What to do about it (hints.py: never a protected path)."""
        from peninsula.supervisor.hints import run_hint

        return run_hint(denied.path, denied.reason)

    def _say(self, line: str) -> None:
        if self.suppressed:
            line = f"peninsula: ({self.suppressed} more denials not shown; see the log)\n" + line
            self.suppressed = 0
        self.say_plain(line)

    def say_plain(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(line + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self.log is not None:
            self.log.finish()
        if self.suppressed and not self.quiet:
            self._say(f"peninsula: {self.suppressed} more denials not shown; see the log")


_libc = ctypes.CDLL(None, use_errno=True)
NR_SETFSUID, NR_SETFSGID, NR_SETGROUPS = 122, 123, 116


def _raw(nr: int, *args) -> int:
    return _libc.syscall(nr, *args)


class Supervisor:
    def __init__(self, listener_fd: int, policy, notices: DenialNotices, verbose: bool = False, sockets=None):
        self.listener = Listener(listener_fd)
        # The policy the current request is judged by (request.Request.check
        # reads it); for `peninsula run` it never changes.
        self.policy = policy
        # The compiled hot path, for a policy that never changes (run): it
        # waits for the next request itself, this listener being the only one.
        self.fast = fastpath.engine_for(policy)
        self.fast_blocks = True
        self.poller = select.poll()
        self.listeners: dict[int, Listener] = {}
        self.notices = notices
        self.verbose = verbose
        self.handlers = table.handlers()
        # peninsula's own processes that may be a confined process's parent
        # (the supervisor; a shell session adds its zygote).
        self.own_pids = {os.getpid()}
        self.requests = 0
        self.python_by_nr: dict[int, int] = {}  # what Python answered (--verbose)
        self.errors = 0
        self.uid, self.gid = os.getuid(), os.getgid()
        self.groups = tuple(sorted(os.getgroups()))
        os.umask(0)  # the target's umask is applied by hand
        # The TCP ports of --allow-connect (None: any): connects are made
        # here, outside the command's Landlock domain (sockets.py).
        self.tcp_connect_ports: tuple[int, ...] | None = None
        self.tcp_bind_ports: tuple[int, ...] | None = None  # --allow-bind, likewise (bind.py)
        # Found now, before any confined process can rename things (a run
        # finds them before its command starts, and passes them).
        if sockets is None:
            from peninsula.supervisor.handlers.allowlist import AllowList, shipped_allowlist, shipped_places

            sockets = AllowList(shipped_allowlist(), shipped_places())
        self.sockets = sockets
        self.socket_hint: str | None = None  # the option that allows a socket, for notices
        from peninsula.supervisor.handlers.allowlist import shipped_ports

        self.loopback_ports = shipped_ports()  # this host's TCP/UDP ports anyone may reach (handlers/loopback.py)
        self.loopback_hint: str | None = None  # the option that allows one, for notices
        self.listened = Records()  # SO_COOKIE -> confinement_of the process that made it listen (listen.py)
        self.unix_listened = Records()  # where a unix socket is bound -> (inode, cookie, confinement) (listen.py)
        self.listen_tainted = Records()  # SO_COOKIE of TCP sockets seen listening unrecorded -> None (listen.py)

    def socket_allowlist(self):
        return self.sockets

    def listener_inside(self, caller_tgid: int, pid: int) -> bool:
        """Is pid (a socket's listener) in the confinement of caller_tgid?
        A run's confinement is every process under its filter: the
        supervisor is a child subreaper, so they all stay beneath it."""
        return pid not in self.own_pids and target.filtered(pid) and target.descends_from(pid, os.getpid())

    def confinement_of(self, tgid: int):
        """What listen.py records of the confinement of tgid, a process that
        made a socket listen: a run is one confinement."""
        return None

    def confinement_covers(self, caller_tgid: int, confinement) -> bool:
        """A socket made to listen in confinement (confinement_of) is inside
        caller_tgid's confinement."""
        return True

    @contextlib.contextmanager
    def as_target(self, req: request.Request):
        """Run an emulated call with the target's file-system identity.

        setfsuid/setfsgid/setgroups are made as raw syscalls, which change
        only the calling thread (glibc would broadcast them).
        """
        st = req.status
        if (st.fsuid, st.fsgid, st.groups) == (self.uid, self.gid, self.groups):
            yield
            return
        if self.uid != 0:
            raise OSError(errno.EPERM, "target runs as another user")
        groups = (ctypes.c_uint * max(1, len(st.groups)))(*st.groups)
        _raw(NR_SETGROUPS, len(st.groups), groups)
        _raw(NR_SETFSGID, st.fsgid)
        _raw(NR_SETFSUID, st.fsuid)
        try:
            yield
        finally:
            _raw(NR_SETFSUID, self.uid)
            _raw(NR_SETFSGID, self.gid)
            mine = (ctypes.c_uint * max(1, len(self.groups)))(*self.groups)
            _raw(NR_SETGROUPS, len(self.groups), mine)

    def serve(self) -> None:
        """Answer requests until no process is left under any listener."""
        self.add_listener(self.listener)
        cpu_start = time.thread_time()
        while self.listeners:
            try:
                events = self.poller.poll()
            except InterruptedError:
                continue
            for fd, mask in events:
                self.on_event(fd, mask)
        self.notices.finish()
        if self.verbose:
            handled, deferred = self.fast.counts() if self.fast is not None else (0, self.requests)
            cpu = time.thread_time() - cpu_start
            per = cpu / max(1, handled + deferred) * 1e6
            self.notices.say_plain(f"peninsula: {handled} requests answered by the compiled hot path, {deferred} by Python; "
                                   f"supervisor CPU {cpu:.3f} s ({per:.1f} us per request)")
            if self.python_by_nr:
                from peninsula.kernel.seccomp import X86_64_SYSCALLS

                names = {number: name for name, number in X86_64_SYSCALLS.items()}
                counts = sorted(self.python_by_nr.items(), key=lambda item: -item[1])
                self.notices.say_plain("peninsula: answered by Python: "
                                       + ", ".join(f"{names.get(nr, nr)} {n}" for nr, n in counts))

    def add_listener(self, listener: Listener) -> None:
        listener.set_sync_wakeup()
        self.listeners[listener.fd] = listener
        self.poller.register(listener.fd, select.POLLIN)

    def on_event(self, fd: int, mask: int) -> None:
        listener = self.listeners.get(fd)
        if listener is None:
            return
        if mask & select.POLLIN:
            self.listener = listener  # the one the current request came from
            self.handle_one()
        elif mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
            self.poller.unregister(fd)
            del self.listeners[fd]

    def handle_one(self) -> None:
        if self.fast is not None:
            raw = self.fast.serve(self.listener.fd, self.fast_blocks)
            notif = None if raw is None else self.listener.take(raw)
        else:
            notif = self.listener.recv()
        if notif is None:
            return
        self.requests += 1
        if self.verbose:
            self.python_by_nr[notif.data.nr] = self.python_by_nr.get(notif.data.nr, 0) + 1
        req_id = notif.id
        handler = self.handlers.get(notif.data.nr)
        if handler is None:
            self.listener.fail(req_id, errno.ENOSYS)
            return
        req = None
        try:
            req = request.Request(self, notif)
            answer = self.dispatch(req, handler)
            self._answer(req, answer)
        except request.Vanished:
            pass
        except request.Denied as denied:
            # Record first: the target is still blocked, so its name is readable.
            self.notices.record(notif.pid, _tgid_or_tid(req, notif.pid), denied)
            self.listener.fail(req_id, denied.errno)
        except OSError as err:
            self.listener.fail(req_id, err.errno or errno.EIO)
        except Exception:  # a bug must cost one request, not the sandbox
            self.errors += 1
            if self.verbose:
                import traceback

                traceback.print_exc()
            self.listener.fail(req_id, errno.EPERM)
        finally:
            if req is not None:
                req.close()

    def dispatch(self, req: request.Request, handler):
        """Judge the request's process, then run the handler under its policy."""
        return handler(req)

    def _answer(self, req: request.Request, answer) -> None:
        if answer is request.CONTINUE:
            self.listener.allow_continue(req.id)
        elif isinstance(answer, request.Fd):
            try:
                self.listener.reply_fd(req.id, answer.fd, answer.cloexec)
            finally:
                os.close(answer.fd)
        else:
            self.listener.reply(req.id, int(answer))


def _tgid_or_tid(req, tid: int) -> int:
    """The request's process for a notice; its thread when the process is
    gone (the tgid is read from /proc lazily, and may no longer be there)."""
    try:
        return req.tgid if req is not None else tid
    except OSError:
        return tid
