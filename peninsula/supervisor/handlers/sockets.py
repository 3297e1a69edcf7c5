"""connect() and sendto() of confined processes: whom a socket may reach.

Landlock up to ABI 8 does not cover pathname unix sockets, so a confined
process could connect to the user's tmux server, D-Bus, systemd --user or
X11 display and have it run code outside the sandbox. Every connect of a
confined process, and every sendto with a destination address, comes here.

Nothing is answered with CONTINUE: the kernel would read the address again
(from memory the target can change) and look the fd number up again (another
thread can dup2 a different socket onto it). Instead the address is read
once, the target's socket is duplicated with pidfd_getfd, and the call is
made here, on that socket:

- a pathname unix address is resolved for the target (its cwd, root,
  identity), the socket inode is pinned with O_PATH and the call goes to
  /proc/self/fd/<pin>, so it reaches exactly the inode decided on. A socket
  inode is bound to at most one socket for its life, so the listener judged
  is the listener reached;
- an abstract unix address has no inode: it is judged the same way, on
  the connection made (Landlock scopes abstract sockets in the target, but
  this connect is the supervisor's);
- other families (TCP, UDP...) are connected as given; the TCP port rules
  of --allow-connect are applied here, as Landlock would in the target.

Who the listener is comes from the kernel: SO_PEERPIDFD of a connection
names the process that called listen(), judged by the supervisor's own
rules (a run: a process under this sandbox's filter; a shell session: the
same timeline as every other decision). That process is whoever called
listen() last, so the socket bound at the name must also be one a process
of the confinement made listen (listen.py keeps the record): a confined
process that listens again on an outside server's leaked listener does
not make it inside. A listener not on the allow-list
is judged on a fresh socket of the supervisor's, and only an allowed
connection is installed in the target (_Judge): the target's socket is
never connected to a listener not yet judged allowed. A connect that may
wait (a blocking socket) is finished in a thread of its own, so the
supervisor's loop never waits for a network.

The listener sees the supervisor as its peer (SO_PEERCRED): the
supervisor's pid, with the target's uid and gids. The session's control
socket is told the real caller (see _Tag).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import stat
import struct
import threading

from peninsula.kernel import libc
from peninsula.policy import engine as policy
from peninsula.kernel import target
from peninsula.supervisor.handlers import listened
from peninsula.supervisor.handlers.request import Deferred, Denied, signed_int, their_file
from peninsula.kernel.resolve import location

AF_UNIX = socket.AF_UNIX
SO_PEERPIDFD = 77  # Linux 6.5
SOCKADDR_STORAGE = 128  # the kernel refuses a longer address (EINVAL)
SUN_PATH_OFFSET = 2
SOCKADDR_UN = 110
DGRAM_MAX = 1 << 20  # larger than any unix datagram the kernel accepts by default
MSG_FASTOPEN = 0x20000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.connect.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_libc.sendto.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_libc.sendto.restype = ctypes.c_ssize_t
NR_SETRESUID, NR_SETRESGID, NR_SETGROUPS = 117, 119, 116


# -- identity --------------------------------------------------------------------------


def _ids(tid: int) -> tuple[int, int, tuple[int, ...]]:
    """The target thread's effective uid and gid, and its groups."""
    with open(f"/proc/{tid}/status", "rb") as handle:
        text = handle.read()
    fields = dict(line.split(b":", 1) for line in text.splitlines() if b":" in line)
    groups = tuple(sorted(int(g) for g in fields.get(b"Groups", b"").split()))
    return int(fields[b"Uid"].split()[1]), int(fields[b"Gid"].split()[1]), groups


def _become(uid: int, gid: int, groups: tuple[int, ...]) -> None:
    """This thread only (raw syscalls): effective and file-system ids. The
    real and saved ids stay root, so the thread can come back."""
    array = (ctypes.c_uint * max(1, len(groups)))(*groups)
    minus = 0xFFFFFFFF
    if (_libc.syscall(NR_SETGROUPS, len(groups), array) != 0
            or _libc.syscall(NR_SETRESGID, minus, gid, minus) != 0
            or _libc.syscall(NR_SETRESUID, minus, uid, minus) != 0):
        raise OSError(ctypes.get_errno(), "cannot take the target's identity")


def _call_as(ids, func):
    """func() with the target's full identity when we are root and it is
    not: a unix listener records the connecting thread's credentials
    (SO_PEERCRED), and must see the target's, not root's. Done in a thread
    of its own, which ends with it: the loop's identity is never touched."""
    if ids is None:
        return func()
    box: list = []

    def work():
        try:
            _become(*ids)
            box.append((True, func()))
        except BaseException as err:  # handed to the caller below
            box.append((False, err))

    worker = threading.Thread(target=work, name="peninsula-as-target", daemon=True)
    worker.start()
    worker.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value


def _needs_ids(req):
    """The target's ids when the call must be made with them. A target
    whose file-system uid is root could take root's ids itself."""
    if os.geteuid() != 0 or req.status.fsuid == 0:
        return None
    return _ids(req.tid)


# -- the calls -------------------------------------------------------------------------


def _raw_connect(fd: int, addr: bytes) -> int:
    """0, or the errno the kernel gave."""
    if _libc.connect(fd, addr, len(addr)) == 0:
        return 0
    return ctypes.get_errno()


def _raw_sendto(fd: int, data: bytes, flags: int, addr: bytes) -> tuple[int, int]:
    sent = _libc.sendto(fd, data, len(data), flags, addr, len(addr))
    return (sent, 0) if sent >= 0 else (-1, ctypes.get_errno())


def _proc_addr(pinned: int) -> bytes:
    return struct.pack("H", AF_UNIX) + f"/proc/self/fd/{pinned}".encode() + b"\0"


def _unix_path(addr: bytes) -> bytes | None:
    """The path of a pathname unix address (the kernel stops at the first
    NUL), or None for an abstract or malformed one (the kernel judges it)."""
    if len(addr) <= SUN_PATH_OFFSET or len(addr) > SOCKADDR_UN or addr[SUN_PATH_OFFSET] == 0:
        return None
    return addr[SUN_PATH_OFFSET:].split(b"\0", 1)[0]


def _peer_pid(sock: socket.socket) -> tuple[int, int]:
    """The pid of the process that called listen() on sock's peer, and a
    pidfd on that same process (-1, -1 when the kernel cannot say). Both
    come from the one struct pid the socket keeps."""
    try:
        pidfd = sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        return -1, -1
    pid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    return pid, pidfd


def _alive(pidfd: int) -> bool:
    """The process behind pidfd has not exited: what was read of pid in
    /proc, after the pidfd was taken, was that process."""
    try:
        signal.pidfd_send_signal(pidfd, 0)
        return True
    except OSError:
        return False


class _Target:
    """The target's socket (a duplicate of its open file) and what the
    kernel checks first, in the kernel's order: EBADF, then for connect the
    address (EINVAL, EFAULT) before ENOTSOCK, for sendto after it."""

    def __init__(self, req, fd_index: int, addr_index: int, len_index: int, socket_first: bool = False):
        number = signed_int(req.args[fd_index])
        if number < 0:
            raise OSError(errno.EBADF, "bad fd")
        self.fd = their_file(req, number)
        if socket_first:
            self._is_socket()
        length = signed_int(req.args[len_index])
        if length < 0 or length > SOCKADDR_STORAGE:
            raise OSError(errno.EINVAL, "address length")
        self.addr = req.memory(req.args[addr_index], length) if length else b""
        self._is_socket()
        self.family = struct.unpack_from("H", self.addr)[0] if len(self.addr) >= 2 else None
        probe = socket.socket(fileno=os.dup(self.fd))  # it asks the kernel for domain and type
        self.domain, self.type = probe.family, probe.type
        probe.close()
        self.blocking = os.get_blocking(self.fd)

    def _is_socket(self) -> None:
        if not stat.S_ISSOCK(os.fstat(self.fd).st_mode):
            raise OSError(errno.ENOTSOCK, "not a socket")


def _unix_target(req, sock: _Target, path: bytes, op: str):
    """A pathname unix connect or send: the pinned inode the call goes to,
    and the judge of its listener (None: nothing left to judge, the socket
    is allowed or is no socket at all)."""
    pinned = req.pin(libc.AT_FDCWD, path, follow=True)
    info = os.fstat(pinned)
    place = location(pinned)
    shown = os.fsdecode(path) if path.startswith(b"/") else place
    if not stat.S_ISSOCK(info.st_mode):
        return pinned, None  # the kernel refuses it (ECONNREFUSED), as it would
    allowed = req.sup.socket_allowlist().lookup(info, place)
    datagram = sock.type == socket.SOCK_DGRAM
    decision = policy.decide_connect(allowed=None if allowed is None else f"{allowed[0]} ({allowed[2]})",
                                     datagram=datagram, listener=None, inside=False)
    if decision.allow:
        token = getattr(req.sup, "control_token", None)
        if allowed[0] == "peninsula" and token is not None and not datagram:
            return pinned, _Tag(req)
        return pinned, None
    if datagram:
        raise Denied(errno.EACCES, shown, _explained(req.sup, shown, decision.reason), op)
    judge = _Judge(req, shown, errno.EACCES, op, signed_int(req.args[0]))
    judge.where = listened.file_key(pinned)  # the socket bound there is the one connected to
    return pinned, judge


def _explained(sup, shown: str, reason: str) -> str:
    """The reason, with the service named when it is a known one, and the
    line that would allow it."""
    service = policy.socket_service(shown)
    if service:
        reason = f"{service}: {reason}"
    hint = getattr(sup, "socket_hint", None)
    if hint and shown.startswith("/"):
        reason += "; allow with " + hint.replace("{path}", shown)
    return reason


class _Tag:
    """The session's control socket learns its caller from SO_PEERCRED,
    which names whoever called connect(): here the supervisor. So the
    supervisor names the caller first, with a secret the caller cannot
    know, before the caller can write anything."""

    def __init__(self, req):
        # Not the caller's pid, which may be another process's by the time
        # the line is read, but a pidfd of it taken while it waits in this
        # connect (the request still valid after it was taken), kept here
        # under a fresh nonce for the control socket to collect.
        pidfd = os.pidfd_open(req.tgid)
        try:
            req.validate()
        except BaseException:
            os.close(pidfd)
            raise
        nonce = req.sup.tag_caller(pidfd)
        self.line = b"peninsula-caller " + req.sup.control_token + b" " + nonce + b"\n"

    def __call__(self, fd: int, threaded: bool) -> int:
        # A fresh connection's buffer is empty: the line fits, even on a
        # non-blocking socket (whose flags are the target's, not touched).
        conn = socket.socket(fileno=os.dup(fd))
        try:
            conn.sendall(self.line)
            return 0
        except OSError as err:
            return err.errno or errno.EIO
        finally:
            conn.close()


WOULD_WAIT = -1  # a trial connect that would wait: it is made again in a thread


class _Judge:
    """Judges the listener of a unix stream connect on a connection the
    target never holds until it is judged allowed. A connection made on the
    target's own socket is live at once: another thread of the target could
    write to it (write and sendmsg are not trapped) before a refusal shut
    it. So the supervisor connects a fresh socket of its own, of the
    target's type, blocking mode and socket options, asks the kernel who
    called listen() on its peer (SO_PEERPIDFD), judged by the supervisor's
    own rules, and only an allowed connection is installed in the target
    at its fd number (SECCOMP_ADDFD_FLAG_SETFD). The listener judged is
    the listener of the connection installed, whatever the name leads to
    later. A refused connection is closed without a byte, the target's
    socket stays unconnected and gets EACCES (EPERM for an abstract name,
    as Landlock's scoping answers)."""

    def __init__(self, req, shown: str, err: int, op: str, number: int):
        self.sup, self.tid, self.tgid = req.sup, req.tid, req.tgid
        self.shown, self.err, self.op = shown, err, op
        self.req_id, self.number = req.id, number
        # Where the listener is bound, as listened.unix_lookup names it: it
        # must have been made to listen inside (listen.py).
        self.where: tuple | None = None
        self.recorded = False

    def connect(self, fd: int, addr: bytes, listener_fd: int, threaded: bool, trial: bool = False) -> int:
        """0 when an allowed connection was installed, else the errno
        (WOULD_WAIT: a trial for a blocking socket found a full backlog)."""
        theirs = socket.socket(fileno=os.dup(fd))
        try:
            state = _state_error(theirs)
            if state:
                return state
            fresh = _fresh_like(theirs)
            blocking = os.get_blocking(fd)
        finally:
            theirs.close()
        try:
            cloexec = _cloexec(self.tid, self.number)
            # Asked before connecting: a one-shot listener (socat) closes
            # once it has accepted. No other socket can be bound to the
            # pinned file, so the connection reaches the socket asked about
            # (or none); an abstract name could change hands meanwhile, and
            # its new listener's process is judged below.
            lock = getattr(self.sup, "lock", None) if threaded else None
            with lock if lock is not None else contextlib.nullcontext():
                self.recorded = self.where is not None and listened.unix_listened_inside(self.sup, self.tgid, self.where)
            if trial:
                fresh.setblocking(False)
            err = _raw_connect(fresh.fileno(), addr)
            if trial and blocking and err == errno.EAGAIN:
                return WOULD_WAIT
            if err:
                return err  # what the target's own connect would have met
            err = self.verdict(fresh, threaded)
            if err:
                return err
            os.set_blocking(fresh.fileno(), blocking)
            _set_fd(listener_fd, self.req_id, fresh.fileno(), self.number, cloexec)
            return 0
        finally:
            fresh.close()

    def verdict(self, peer: socket.socket, threaded: bool) -> int:
        pid, pidfd = _peer_pid(peer)
        inside = False
        if pid > 0:
            # From a thread of its own, the shell supervisor's state is shared.
            lock = getattr(self.sup, "lock", None) if threaded else None
            with lock if lock is not None else contextlib.nullcontext():
                inside = self.recorded and self.sup.listener_inside(self.tgid, pid)
            inside = inside and _alive(pidfd)
        if pidfd >= 0:
            os.close(pidfd)
        if inside:
            return 0
        who = f"{target.comm(pid)} (pid {pid})" if pid > 0 else None
        decision = policy.decide_connect(allowed=None, datagram=False, listener=who, inside=False)
        reason = _explained(self.sup, self.shown, decision.reason)
        self.sup.notices.record(self.tid, self.tgid, Denied(self.err, self.shown, reason, self.op))
        return self.err


# Socket options a client may set before connect that the fresh socket
# must carry (int-valued; the buffer sizes read back doubled).
_COPIED_INT_OPTIONS = (socket.SO_PASSCRED, 34, 76, socket.SO_PRIORITY, 36, 42, socket.SO_RCVLOWAT)  # 34 PASSSEC, 76 PASSPIDFD, 36 MARK, 42 PEEK_OFF
_COPIED_BUFFERS = (socket.SO_SNDBUF, socket.SO_RCVBUF)
_COPIED_STRUCTS = ((socket.SO_RCVTIMEO, 16), (socket.SO_SNDTIMEO, 16), (socket.SO_LINGER, 8))


def _fresh_like(theirs: socket.socket) -> socket.socket:
    """A new unix socket of the target's type, blocking mode and socket
    options. (A name the target bound its socket to is not carried: the
    listener sees an unnamed client.)"""
    flags = socket.SOCK_CLOEXEC | (0 if os.get_blocking(theirs.fileno()) else socket.SOCK_NONBLOCK)
    fresh = socket.socket(AF_UNIX, theirs.type | flags)
    try:
        for opt, size, default in _defaults(fresh):
            value = theirs.getsockopt(socket.SOL_SOCKET, opt, size) if size else theirs.getsockopt(socket.SOL_SOCKET, opt)
            if value != default:
                fresh.setsockopt(socket.SOL_SOCKET, opt, value // 2 if opt in _COPIED_BUFFERS else value)
    except BaseException:
        fresh.close()
        raise
    return fresh


_DEFAULTS: dict[int, list[tuple[int, int, object]]] = {}


def _defaults(fresh: socket.socket) -> list[tuple[int, int, object]]:
    """(option, struct size or 0, value) of a new socket of fresh's type, as
    this kernel makes it (read once per type; options it does not know are
    left out)."""
    found = _DEFAULTS.get(fresh.type)
    if found is None:
        found = []
        for opt in _COPIED_INT_OPTIONS + _COPIED_BUFFERS:
            with contextlib.suppress(OSError):
                found.append((opt, 0, fresh.getsockopt(socket.SOL_SOCKET, opt)))
        for opt, size in _COPIED_STRUCTS:
            found.append((opt, size, fresh.getsockopt(socket.SOL_SOCKET, opt, size)))
        _DEFAULTS[fresh.type] = found
    return found


def _state_error(theirs: socket.socket) -> int:
    """The kernel's answer to a connect on a listening (EINVAL) or
    connected (EISCONN) stream socket, else 0: such a socket must stay
    what it is, not be replaced."""
    if theirs.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        return errno.EINVAL
    try:
        theirs.getpeername()
        return errno.EISCONN
    except OSError:
        return 0


def _cloexec(tid: int, number: int) -> bool:
    """The close-on-exec flag of the target's fd (its fdinfo, in octal;
    the calling thread's, whose fd table SETFD writes to)."""
    with open(f"/proc/{tid}/fdinfo/{number}", "rb") as handle:
        for line in handle:
            if line.startswith(b"flags:"):
                return bool(int(line.split()[1], 8) & os.O_CLOEXEC)
    return False


def _set_fd(listener_fd: int, req_id: int, srcfd: int, number: int, cloexec: bool) -> None:
    """Put srcfd in the target at number, in place of what is there (the
    target's own socket, unless one of its threads put something else
    there meanwhile: then that goes, as a dup2 of the target's would)."""
    from peninsula.kernel.seccomp import SECCOMP_ADDFD_FLAG_SETFD, SECCOMP_IOCTL_NOTIF_ADDFD, NotifAddfd

    add = NotifAddfd(id=req_id, flags=SECCOMP_ADDFD_FLAG_SETFD, srcfd=srcfd, newfd=number,
                     newfd_flags=os.O_CLOEXEC if cloexec else 0)
    libc.ioctl(listener_fd, SECCOMP_IOCTL_NOTIF_ADDFD, ctypes.addressof(add))


class _Call:
    """A connect or sendto to make on the target's socket. It holds its own
    duplicates of the socket and of the pinned inode, so it can outlive the
    request (a call that waits is finished in a thread)."""

    def __init__(self, kind: str, sock_fd: int, addr: bytes, pinned: int | None = None, *,
                 data: bytes = b"", flags: int = 0, judge: "_Judge | _Tag | None" = None):
        self.kind, self.data, self.flags, self.judge = kind, data, flags, judge
        self.fd = os.dup(sock_fd)
        self.pinned = None if pinned is None else os.dup(pinned)
        self.addr = addr if pinned is None else _proc_addr(self.pinned)

    def __call__(self, listener_fd: int, threaded: bool = False, trial: bool = False) -> tuple[int, int]:
        if self.kind == "connect":
            if isinstance(self.judge, _Judge):
                return 0, self.judge.connect(self.fd, self.addr, listener_fd, threaded, trial)
            err = _raw_connect(self.fd, self.addr)
            if self.judge is not None and err == 0:
                err = self.judge(self.fd, threaded)  # _Tag: the allowed control socket is told the caller
            return 0, err
        return _raw_sendto(self.fd, self.data, self.flags, self.addr)

    def close(self) -> None:
        for fd in (self.fd, self.pinned):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _finish(req, call: _Call, blocking: bool):
    """Make the call for the target and answer with its result. A call on
    a blocking socket may wait (a remote TCP connect, a full backlog): it
    is finished in a thread that answers the request itself, so the loop
    never waits for a network."""
    ids = _needs_ids(req)
    if blocking and isinstance(call.judge, _Judge):
        # Tried without waiting first, on the judge's own fresh socket: a
        # listener with room in its backlog answers at once, and then no
        # thread is needed (starting one costs more than such a connect).
        try:
            value, err = _call_as(ids, lambda: call(req.sup.listener.fd, False, True))
        except BaseException:
            call.close()
            raise
        if err != WOULD_WAIT:
            call.close()
            if err:
                raise OSError(err, call.kind)
            return value
    if not blocking:
        try:
            value, err = _call_as(ids, lambda: call(req.sup.listener.fd))
        finally:
            call.close()
        if err:
            raise OSError(err, call.kind)
        return value
    from peninsula.kernel.seccomp import Listener

    listener = Listener(os.dup(req.sup.listener.fd))  # ours: the loop may close its own
    req_id = req.id

    def run():
        try:
            if ids is not None:
                _become(*ids)  # this thread only, and it ends here
            value, err = call(listener.fd, True)
            if err:
                listener.fail(req_id, err)
            else:
                listener.reply(req_id, value)
        except Exception as error:  # the target must get an answer, whatever went wrong
            with contextlib.suppress(OSError):
                listener.fail(req_id, getattr(error, "errno", None) or errno.EIO)
        finally:
            call.close()
            os.close(listener.fd)

    threading.Thread(target=run, name="peninsula-connect", daemon=True).start()
    raise Deferred()






def _read(req, addr: int, size: int) -> bytes:
    """The data to send, read once."""
    out = bytearray()
    while len(out) < size:
        chunk = min(size - len(out), target.XATTR_SIZE_MAX)
        out += req.memory(addr + len(out), chunk)
    return bytes(out)


def _abstract_name(addr: bytes) -> str:
    return "@" + addr[SUN_PATH_OFFSET + 1:].split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def _refuse_abstract_dgram(addr: bytes, op: str):
    raise Denied(errno.EPERM, _abstract_name(addr), "the receiver of an abstract datagram socket cannot be identified", op)


def _check_tcp_port(req, sock) -> None:
    """--allow-connect: Landlock judges TCP connects in the target; this
    connect is made by the supervisor, so the same rule is applied here."""
    ports = req.sup.tcp_connect_ports
    if ports is None or sock.type != socket.SOCK_STREAM or sock.domain != sock.family:
        return
    port = struct.unpack_from("!H", sock.addr, 2)[0] if len(sock.addr) >= 4 else None
    if port not in ports:
        raise Denied(errno.EACCES, f"tcp port {port}", "not in --allow-connect", "connect")


def socket_at(path: str) -> tuple[os.stat_result | None, dict | None]:
    """(the socket file at path, None), or (None, the answer `peninsula check
    --connect` gives when there is none: how the connect would fail)."""
    try:
        info = os.stat(path)
    except OSError as err:
        return None, {"allow": False, "reason": f"{err.strerror} (the connect would fail with {errno.errorcode.get(err.errno)})"}
    if not stat.S_ISSOCK(info.st_mode):
        return None, {"allow": False, "reason": "not a socket (the connect would fail with ECONNREFUSED)"}
    return info, None


def explain_socket(sup, caller_tgid: int, path: str, locked: bool) -> dict:
    """For `peninsula check --connect`: the answer a confined connect from
    caller_tgid to path would get. The path is the caller's absolute one."""
    info, failed = socket_at(path)
    if failed is not None:
        return failed
    allowed = sup.socket_allowlist().lookup(info, os.path.realpath(path))
    if allowed is not None:
        decision = policy.decide_connect(allowed=f"{allowed[0]} ({allowed[2]})", datagram=False, listener=None, inside=False)
        return {"allow": True, "reason": decision.reason}
    probe = socket.socket(AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    try:
        pinned = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            lock = getattr(sup, "lock", None) if locked else None
            with lock if lock is not None else contextlib.nullcontext():
                recorded = listened.unix_listened_inside(sup, caller_tgid, listened.file_key(pinned))  # before: _Judge.connect
            err = _raw_connect(probe.fileno(), _proc_addr(pinned))
        finally:
            os.close(pinned)
        if err:
            return {"allow": False, "reason": f"no listener reached ({errno.errorcode.get(err, err)})"}
        pid, pidfd = _peer_pid(probe)
    finally:
        probe.close()
    who, inside = None, False
    if pid > 0:
        who = f"{target.comm(pid)} (pid {pid})"
        lock = getattr(sup, "lock", None) if locked else None
        with lock if lock is not None else contextlib.nullcontext():
            inside = recorded and sup.listener_inside(caller_tgid, pid) and _alive(pidfd)
        os.close(pidfd)
    decision = policy.decide_connect(allowed=None, datagram=False, listener=who, inside=inside)
    reason = decision.reason if decision.allow else _explained(sup, path, decision.reason)
    return {"allow": decision.allow, "reason": reason}
