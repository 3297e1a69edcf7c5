"""Syscall handlers: decide on the resolved location, then do the call.

A handler reads the target's arguments once (each memory read is followed by
an ID_VALID check), resolves and pins what they name, asks the policy about
where the pinned object really is, and performs the call on the pinned
object itself. It returns the syscall's value, an Fd to install in the
target, or CONTINUE (only for value checks such as a ptrace pid); it raises
OSError for an errno and Denied for a policy refusal.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
import stat
import struct
import threading
import time

from . import caps, direnvrecords, kernelorder, libc, pinned, policy, target
from .resolve import MAX_SYMLINKS, Context, is_anonymous, is_deleted, is_symlink_at, location, reachable

O_TMPFILE = 0o20000000 | os.O_DIRECTORY
O_WRITE_INTENT = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC
UTIME_OMIT = (1 << 30) - 2
RENAME_EXCHANGE = 2
XATTR_NAME_MAX = 255
PTRACE_TRACEME = 0
S_IFMT = 0o170000


class Denied(Exception):
    def __init__(self, err: int, path: str, reason: str, op: str):
        super().__init__(reason)
        # Names that are not UTF-8 are shown with \x escapes: the notice, the
        # log and the JSON result must all be able to carry the path.
        path = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        self.errno, self.path, self.reason, self.op = err, path, reason, op


class Vanished(Exception):
    """The request is no longer valid (the target died or was interrupted)."""


class Deferred(Vanished):
    """The request will be answered later, from another thread: the main
    loop must not answer it (it treats this like a vanished request)."""


class Fd:
    __slots__ = ("fd", "cloexec")

    def __init__(self, fd: int, cloexec: bool):
        self.fd, self.cloexec = fd, cloexec


CONTINUE = object()


class Request(Context):
    """A trapped syscall: its arguments, its target, and the supervisor's tools."""

    def __init__(self, sup, notif):
        self.sup = sup
        self.id = notif.id
        self.nr = notif.data.nr
        self.args = tuple(notif.data.args)
        tid = notif.pid
        self._status: target.Status | None = None
        self._depth = 0
        self._switched = False
        self._capped = False
        super().__init__(tid)

    @property
    def tgid(self) -> int:
        # Read from /proc only when a decision needs it: most requests don't.
        return self.status.tgid

    @property
    def status(self) -> target.Status:
        if self._status is None:
            self._status = target.Status(self.tid)
        return self._status

    def as_target(self):
        """Act with the target's file-system identity (fsuid, fsgid, groups)
        for everything done for this request, path resolution included: a
        root supervisor must not search, read or create where the target
        could not. Re-entrant: only the outermost use switches."""
        return _Identity(self)

    def validate(self) -> None:
        if not self.sup.listener.id_valid(self.id):
            raise Vanished()

    def path(self, index: int) -> bytes:
        try:
            data = target.read_cstring(self.tid, self.args[index])
        except PermissionError:
            self._unreadable()
        self.validate()
        return data

    def _unreadable(self):
        """process_vm_readv refused: the target made itself non-dumpable
        (prctl PR_SET_DUMPABLE 0, as ssh and gpg-agent do) and we are not
        root. Nothing can be decided for it: say so once, fail closed."""
        self.validate()
        raise Denied(errno.EPERM, f"(arguments of pid {self.tgid})",
                     "the process is not dumpable (it made itself so, as ssh-agent and gpg-agent do), so peninsula "
                     "cannot read what it asks for; start it outside the project and use it from inside", "call")

    def optional_path(self, index: int) -> bytes | None:
        return None if self.args[index] == 0 else self.path(index)

    def memory(self, addr: int, size: int) -> bytes:
        try:
            data = target.read_bytes(self.tid, addr, size)
        except PermissionError:
            self._unreadable()
        self.validate()
        return data

    def check(self, where: str, op: str, err: int = errno.EACCES, kernel=None) -> None:
        """Raise Denied unless the policy allows a write at where.

        kernel, when given, says what the kernel would answer were the
        location not writable (kernelorder): its errno is what a refusal
        returns, and a call the kernel would not have carried out is
        answered with that errno alone, neither logged nor noticed."""
        if is_anonymous(where):
            return
        if is_deleted(where):
            raise Denied(err, where, "the file was deleted; its location is unknown", op)
        tgid = self.tgid if where.startswith("/proc/") else None
        decision = policy.decide_write(self.sup.policy, where, tgid=tgid)
        if not decision.allow:
            own_envrc = self.sup.policy.own_envrc
            if own_envrc is not None and direnvrecords.permits(own_envrc, where, op):
                return
            if kernel is not None:
                err, genuine = kernel()
                if not genuine:
                    raise OSError(err, "the kernel would refuse it too")
            raise Denied(err, where, decision.reason, op)

    def check_name(self, where: str, op: str, err: int = errno.EACCES, *, special: bool = False) -> None:
        """Raise Denied when where is a state file's name (policy.StateAllowance)
        and op is not one its tool needs: checked after check(), since the
        name may also lie beneath a writable root. special: a mknod of a
        FIFO or socket, never allowed there."""
        decision = policy.decide_name_change(self.sup.policy, "mknod-special" if special else op, where)
        if decision is not None and not decision.allow:
            raise Denied(err, where, decision.reason, op)

    def check_link(self, old: str, new: str) -> None:
        """Raise Denied when a link's ends break a dotlock rule
        (policy.decide_link): checked after both ends' check_name."""
        decision = policy.decide_link(self.sup.policy, old, new)
        if decision is not None and not decision.allow:
            raise Denied(errno.EACCES, new, decision.reason, "link")

    def placed(self, fd: int, op: str, err: int = errno.EACCES) -> str:
        """Where the pinned object is, refused when the kernel's name for it
        does not lead to it from our root (resolve.reachable). The notice
        names the object, never the misleading path."""
        where = location(fd)
        if is_anonymous(where) or is_deleted(where) or reachable(fd, where):
            return where
        info = os.fstat(fd)
        raise Denied(err, f"(device {os.major(info.st_dev)}:{os.minor(info.st_dev)} inode {info.st_ino})",
                     "not reachable from the supervisor's root: a detached mount or another mount namespace's", op)

    def entry(self, dirfd: int, path: bytes, *, resolve: int = 0, ours: bool = False) -> tuple[int, bytes, str]:
        parent, name, where = super().entry(dirfd, path, resolve=resolve, ours=ours)
        self.placed(parent, "create or remove")
        return parent, name, where

    def check_fd(self, fd: int, op: str, err: int = errno.EACCES, *, contents: bool = True, metadata: bool = False,
                 kernel=None) -> str:
        """Check the object behind a pinned fd. A regular file's contents and
        its metadata (mode, owner, times, xattrs) are shared by all its hard
        links, and the other names may be outside: refused unless the policy
        allows hard-linked writes."""
        where = self.placed(fd, op, err)
        self.check(where, op, err, kernel)
        if contents and not is_anonymous(where):
            info = os.fstat(fd)
            if stat.S_ISREG(info.st_mode):
                decision = policy.decide_hardlinked_write(self.sup.policy, info.st_nlink)
                if not decision.allow:
                    raise Denied(err, where, decision.reason, op)
            elif _is_pty(info):
                if not _own_terminal(self, info):
                    raise Denied(err, where, "a terminal that is not one of the process's own", op)
            elif not _safe_device(info):
                # A device node is a door to the device, wherever the node is:
                # a disk's node made in /tmp or the project writes the disk.
                raise Denied(err, where, f"device {os.major(info.st_rdev)}:{os.minor(info.st_rdev)} is not a terminal or null device", op)
            elif (
                metadata
                and (stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode))
                and policy.writable_root(self.sup.policy, where) is None
            ):
                # /dev/null and friends are writable for their contents
                # only: their mode, owner and times are the host's.
                raise Denied(err, where, "a host device: only its contents may be written", op)
        return where

    def dirfd(self, index: int) -> int:
        return ctypes.c_int(self.args[index] & 0xFFFFFFFF).value


_libc = ctypes.CDLL(None, use_errno=True)
NR_SETGROUPS, NR_SETFSUID, NR_SETFSGID = 116, 122, 123


def _set_identity(uid: int, gid: int, groups: tuple[int, ...]) -> None:
    """Raw syscalls: they change only the calling thread (glibc's wrappers
    would change every thread of the supervisor)."""
    array = (ctypes.c_uint * max(1, len(groups)))(*groups)
    if _libc.syscall(NR_SETGROUPS, len(groups), array) != 0:
        raise OSError(ctypes.get_errno(), "setgroups failed")
    _libc.syscall(NR_SETFSGID, gid)
    _libc.syscall(NR_SETFSUID, uid)
    # setfsuid/setfsgid report the previous value, never an error: check.
    if _libc.syscall(NR_SETFSUID, -1 & 0xFFFFFFFF) != uid or _libc.syscall(NR_SETFSGID, -1 & 0xFFFFFFFF) != gid:
        raise OSError(errno.EPERM, "cannot take the target's identity")


_MINE: tuple | None = None


def _mine() -> tuple:
    """The supervisor's own identity (fixed for its life)."""
    global _MINE
    if _MINE is None:
        _MINE = (os.geteuid(), os.getegid(), tuple(sorted(os.getgroups())))
    return _MINE


class _Identity:
    __slots__ = ("req",)

    def __init__(self, req: "Request"):
        self.req = req

    def __enter__(self):
        req = self.req
        mine = _mine()
        # A supervisor that is not root serves only targets of its own ids:
        # no_new_privs stops setuid programs, and an unprivileged user
        # namespace maps only our ids (setgroups denied). Nothing to compare.
        if req._depth == 0 and mine[0] != 0:
            pass
        elif req._depth == 0:
            st = req.status
            wanted = (st.fsuid, st.fsgid, st.groups)
            if wanted != mine:
                if mine[0] != 0:
                    raise OSError(errno.EPERM, "target runs as another user")
                try:
                    _set_identity(*wanted)
                except OSError:
                    _set_identity(*mine)
                    raise
                req._switched = True
            _lower_capabilities(req, st)
        req._depth += 1
        return self

    def __exit__(self, *exc):
        req = self.req
        req._depth -= 1
        if req._depth == 0 and req._capped:
            req._capped = False
            caps.set_effective(*_my_caps())  # first: giving the identity back needs CAP_SETUID
        if req._depth == 0 and req._switched:
            req._switched = False
            _set_identity(*_mine())
        return False


_MY_CAPS: tuple | None = None


def _my_caps() -> tuple:
    """The supervisor's own capability sets (fixed for its life)."""
    global _MY_CAPS
    if _MY_CAPS is None:
        _MY_CAPS = caps.get()
    return _MY_CAPS


def _lower_capabilities(req: "Request", st: target.Status) -> None:
    """Act with no capability the target lacks (caps.acting_set)."""
    mine = _my_caps()
    wanted = caps.acting_set(st.cap_effective, mine)
    if wanted == mine[0]:
        return
    try:
        caps.set_effective(wanted, mine[1], mine[2])
    except OSError:
        if req._switched:
            req._switched = False
            _set_identity(*_mine())
        raise
    req._capped = True


def _int(value: int) -> int:
    return ctypes.c_int(value & 0xFFFFFFFF).value


# -- opens -------------------------------------------------------------------


O_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# Every flag open() knows (VALID_OPEN_FLAGS): open and openat ignore the
# others, openat2 refuses them.
VALID_OPEN_FLAGS = (
    os.O_ACCMODE | os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC | os.O_APPEND | os.O_NONBLOCK
    | os.O_SYNC | os.O_DSYNC | 0o20000 | os.O_DIRECT | 0o100000 | os.O_DIRECTORY | os.O_NOFOLLOW
    | os.O_NOATIME | os.O_CLOEXEC | os.O_PATH | 0o20000000
)


def do_open(req: Request, dirfd: int, path: bytes, flags: int, mode: int, resolve: int, op: str, strict: bool = False):
    flags &= 0xFFFFFFFF
    if flags & ~VALID_OPEN_FLAGS:
        if strict:  # openat2
            raise OSError(errno.EINVAL, "unknown open flags")
        flags &= VALID_OPEN_FLAGS
    if flags & os.O_PATH:
        if strict:  # openat2
            if flags & ~O_PATH_FLAGS:
                raise OSError(errno.EINVAL, "O_PATH with other flags")
            # An O_PATH fd cannot be installed with ADDFD (the kernel's fget
            # skips O_PATH files), and the flags live in memory the target
            # may change, so CONTINUE is no answer either: say openat2 is
            # not there, and callers fall back to openat (systemd, libpathrs).
            raise OSError(errno.ENOSYS, "openat2 with O_PATH is not emulated")
        # open/openat: the flags are a register value, and the kernel
        # ignores every flag but these with O_PATH, so nothing is written.
        return CONTINUE
    if not flags & O_WRITE_INTENT and (flags & O_TMPFILE) != O_TMPFILE:
        return _open_plain(req, dirfd, path, flags, mode, resolve)
    if flags & os.O_CREAT and path.endswith(b"/") and path.rstrip(b"/").rpartition(b"/")[2] not in (b"", b".", b".."):
        # open_last_lookups(): a create with a trailing slash, once the
        # parent is found, is EISDIR whatever the name is.
        req.entry(dirfd, path, resolve=resolve)
        raise OSError(errno.EISDIR, "trailing slash on a file to create")
    cloexec = bool(flags & os.O_CLOEXEC)
    for _ in range(8):
        try:
            return _open_existing(req, dirfd, path, flags, mode, resolve, op, cloexec)
        except FileNotFoundError:
            if not flags & os.O_CREAT:
                raise
        result = _open_create(req, dirfd, path, flags, mode, resolve, op, cloexec)
        if result is not None:
            return result
    raise OSError(errno.ELOOP, "path kept changing")


def _open_plain(req, dirfd, path, flags, mode, resolve):
    """A read-only openat2: no policy bears on it, but its flags live in
    memory the target can change, so we open it rather than CONTINUE. It is
    pinned first, so a path resolved through our own /proc/self is mapped
    to the target's (never an fd on the supervisor's memory)."""
    cloexec = bool(flags & os.O_CLOEXEC)
    pinned = req.pin(dirfd, path, follow=not flags & os.O_NOFOLLOW, resolve=resolve)
    info = os.fstat(pinned)
    if stat.S_ISLNK(info.st_mode):
        raise OSError(errno.ELOOP, "symlink with O_NOFOLLOW")
    if stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(5, 0):
        return Fd(_open_controlling_tty(req, flags), cloexec)
    return _reopen(req, pinned, info, (flags | os.O_CLOEXEC | os.O_NOCTTY) & ~os.O_NOFOLLOW, cloexec)


def _reopen(req, pinned, info, reopen, cloexec):
    """Open the pinned object as the target would, with reopen's flags."""
    source = f"/proc/self/fd/{pinned}"
    if stat.S_ISFIFO(info.st_mode) and not reopen & os.O_NONBLOCK and reopen & os.O_ACCMODE != os.O_RDWR:
        # The open waits for the other end: finish it in a thread of ours.
        want = os.W_OK if reopen & os.O_ACCMODE == os.O_WRONLY else os.R_OK
        with req.as_target():
            if not os.access(source, want, effective_ids=True):
                raise OSError(errno.EACCES, "FIFO not accessible")
        _FifoOpener.start(req, pinned, reopen, cloexec)
        raise Deferred()
    with req.as_target():
        return Fd(os.open(source, reopen), cloexec)


def _open_existing(req, dirfd, path, flags, mode, resolve, op, cloexec):
    exclusive = flags & os.O_CREAT and flags & os.O_EXCL
    follow = not (flags & os.O_NOFOLLOW or exclusive)
    pinned = req.pin(dirfd, path, follow=follow, resolve=resolve, creating=bool(flags & os.O_CREAT))
    info = os.fstat(pinned)
    if exclusive:
        raise OSError(errno.EEXIST, "exists")
    source = f"/proc/self/fd/{pinned}"
    if (flags & O_TMPFILE) == O_TMPFILE:
        if not stat.S_ISDIR(info.st_mode):
            raise OSError(errno.ENOTDIR, "not a directory")
        req.check(req.placed(pinned, op) + "/", op, kernel=lambda: kernelorder.tmpfile(pinned))
        # O_EXCL stays: it makes the file impossible to link in later.
        reopen = (flags | os.O_CLOEXEC | os.O_NOCTTY) & ~(os.O_CREAT | os.O_NOFOLLOW)
        create_mode = (mode & 0o7777) & ~req.status.umask
        _refuse_privileged(req, location(pinned) + "/", create_mode, False, op)
        with req.as_target():
            return Fd(os.open(source, reopen, create_mode), cloexec)
    err = kernelorder.open_existing(flags, info)
    if err:
        raise OSError(err, "the kernel's own answer for this object")
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
        req.check_fd(pinned, op, kernel=lambda: kernelorder.open_write(pinned, flags, info))
    # else O_RDONLY|O_CREAT of an existing object: a read, like any other
    if stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(5, 0):
        return Fd(_open_controlling_tty(req, flags), cloexec)
    reopen = (flags | os.O_CLOEXEC | os.O_NOCTTY) & ~(os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW)
    if flags & os.O_TRUNC:
        _room_for_fd(req)
    return _reopen(req, pinned, info, reopen, cloexec)


class _FifoOpener:
    """A FIFO open that waits for the other end, done in a thread with the
    target's identity. It is interrupted (a signal to that thread only)
    every WATCH seconds to see whether the request is still alive, so a
    target killed or interrupted while it waits costs no thread and no fd
    for ever."""

    WATCH = 0.25
    _lock = threading.Lock()
    _waiting: set[int] = set()  # native thread ids of openers in their open
    _watchdog: "threading.Thread | None" = None
    _signal = signal.SIGURG

    @classmethod
    def start(cls, req, pinned: int, flags: int, cloexec: bool) -> None:
        cls._install()
        fd = os.dup(pinned)  # outlives the request's own fds
        st = req.status
        identity = (st.fsuid, st.fsgid, st.groups)
        listener_fd = os.dup(req.sup.listener.fd)  # ours: the loop may close its own
        worker = threading.Thread(target=cls._work, args=(listener_fd, req.id, req.tid, req.tgid, fd, flags, cloexec, identity),
                                  name="peninsula-fifo", daemon=True)
        worker.start()

    @classmethod
    def _install(cls) -> None:
        if cls._watchdog is not None:
            return
        # A handler (not SIG_IGN) without SA_RESTART, so a blocked open in
        # the thread the signal is sent to returns EINTR. Set from the main
        # thread, where handlers run.
        try:
            signal.signal(cls._signal, lambda *_: None)
            signal.siginterrupt(cls._signal, True)
        except ValueError:  # not the main thread: openers then wait unwatched
            cls._watchdog = threading.current_thread()
            return
        cls._watchdog = threading.Thread(target=cls._watch, name="peninsula-fifo-watch", daemon=True)
        cls._watchdog.start()

    @classmethod
    def _watch(cls) -> None:
        while True:
            time.sleep(cls.WATCH)
            with cls._lock:
                waiting = list(cls._waiting)
            for tid in waiting:
                try:
                    signal.pthread_kill(tid, cls._signal)
                except (ProcessLookupError, OSError):
                    pass

    @classmethod
    def _work(cls, listener_fd, req_id, tid_target, tgid_target, fd, flags, cloexec, identity) -> None:
        from .seccomp import Listener

        listener = Listener(listener_fd)  # its own request buffers
        tid = threading.get_ident()
        opened = -1
        try:
            if identity != _mine():
                _set_identity(*identity)  # this thread only
            path = f"/proc/self/fd/{fd}".encode()
            with cls._lock:
                cls._waiting.add(tid)
            try:
                while True:
                    opened = _libc.open(path, flags)  # EINTR comes back to us
                    if opened >= 0:
                        break
                    err = ctypes.get_errno()
                    if err != errno.EINTR:
                        listener.fail(req_id, err)
                        return
                    if not listener.id_valid(req_id):
                        return  # the target died
                    answer = _interrupting_signal(tid_target, tgid_target)
                    if answer:
                        # The target waits killably for us, so a signal
                        # that would have interrupted its open natively
                        # stays pending: end the open as the kernel would.
                        listener.fail(req_id, answer)
                        return
            finally:
                with cls._lock:
                    cls._waiting.discard(tid)
            listener.reply_fd(req_id, opened, cloexec)
        except OSError as err:
            listener.fail(req_id, err.errno or errno.EIO)
        finally:
            os.close(fd)
            os.close(listener_fd)
            if opened >= 0:
                os.close(opened)


ERESTARTSYS = 512  # kernel-internal: restarted with SA_RESTART, else EINTR


def _signal_state(tid: int) -> tuple[int, int, int] | None:
    """(own pending, process-wide pending, blocked) of a thread."""
    try:
        with open(f"/proc/{tid}/status", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = {}
    for line in text.split(b"\n"):
        key, _, value = line.partition(b":")
        fields[key] = value.strip()
    try:
        return int(fields[b"SigPnd"], 16), int(fields[b"ShdPnd"], 16), int(fields[b"SigBlk"], 16)
    except (KeyError, ValueError):
        return None


def _interrupting_signal(tid: int, tgid: int) -> int:
    """0 when no pending signal would have interrupted the target thread's
    blocking open; else the error the open should end with.

    ERESTARTSYS makes the kernel restart the call (SA_RESTART) or give
    EINTR, as for a native FIFO open. It is only given when the signal is
    surely this thread's to take (sent to the thread, or sent to the process
    and this is its main thread, which the kernel picks first); a signal
    for the process that the main thread can take leaves this thread
    waiting, as natively; otherwise EINTR (ERESTARTSYS must not reach user
    space without a signal)."""
    state = _signal_state(tid)
    if state is None:
        return 0
    own, shared, blocked = state
    if own & ~blocked:
        return ERESTARTSYS
    shared &= ~blocked
    if not shared:
        return 0
    if tid == tgid:
        return ERESTARTSYS
    main = _signal_state(tgid)
    if main is not None and shared & ~main[2]:
        return 0  # the main thread takes it
    return errno.EINTR


def _open_controlling_tty(req, flags) -> int:
    """/dev/tty means the target's terminal, not the supervisor's. Like the
    kernel, it asks no permission on the terminal's own node: when the
    supervisor shares the target's controlling terminal it opens /dev/tty
    itself, else the node of the target's terminal with its own rights."""
    number = target.tty_nr(req.tid)
    if number == 0:
        raise OSError(errno.ENXIO, "no controlling terminal")
    reopen = (flags | os.O_CLOEXEC | os.O_NOCTTY) & ~(os.O_CREAT | os.O_EXCL | os.O_TRUNC | os.O_NOFOLLOW)
    reopen &= ~0o20000000 & ~os.O_DIRECTORY  # O_TMPFILE / O_DIRECTORY make no sense here
    if target.tty_nr(os.getpid()) == number:
        return os.open("/dev/tty", reopen)
    major, minor = os.major(number), os.minor(number)
    if 136 <= major <= 143:
        node = f"/dev/pts/{(major - 136) * 256 + minor}"
    else:
        node = f"/dev/char/{major}:{minor}"
    return os.open(node, reopen)


def _room_for_fd(req) -> None:
    """EMFILE now, before a create or truncate, when the target could not
    take the fd: ADDFD would fail after the file was made or emptied."""
    try:
        soft = resource.prlimit(req.tid, resource.RLIMIT_NOFILE)[0]
    except OSError:
        return
    if soft == resource.RLIM_INFINITY or req.status.fdsize < soft:
        return  # the lowest free fd is at most the table's size
    try:
        used = {int(name) for name in os.listdir(f"/proc/{req.tid}/fd")}
    except OSError:
        return
    lowest = 0
    while lowest in used:
        lowest += 1
    if lowest >= soft:
        raise OSError(errno.EMFILE, "the target has no free fd")


def _open_create(req, dirfd, path, flags, mode, resolve, op, cloexec):
    scoped = resolve & (libc.RESOLVE_BENEATH | libc.RESOLVE_IN_ROOT)
    if scoped:
        # Pin the root once; every hop is resolved from it again.
        root, _ = req.base(dirfd, b".")
        parent, name, where = req.entry(root, path, resolve=resolve, ours=True)
    else:
        parent, name, where = req.entry(dirfd, path, resolve=resolve)
    if name.endswith(b"/"):
        raise OSError(errno.EISDIR, "trailing slash on a file to create")
    hops = 0
    link = is_symlink_at(parent, name)
    while link is not None:
        # A dangling symlink: the kernel would create the file it points to.
        if flags & os.O_NOFOLLOW:
            raise OSError(errno.ELOOP, "symlink with O_NOFOLLOW")
        if resolve & libc.RESOLVE_NO_SYMLINKS:
            raise OSError(errno.ELOOP, "symlink with RESOLVE_NO_SYMLINKS")
        hops += 1
        if hops > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many symlinks")
        if scoped:
            # The link's text replaces the last component of the path, which
            # is then resolved from the root again, under the same flags
            # (an absolute link: EXDEV under BENEATH, from the root IN_ROOT).
            head, sep, _ = path.rstrip(b"/").rpartition(b"/")
            if link.startswith(b"/") or not sep:
                path = link
            else:
                path = head.rstrip(b"/") + b"/" + link if head else b"/" + link
            parent, name, where = req.entry(root, path, resolve=resolve, ours=True)
        else:
            parent, name, where = req.entry(parent, link, resolve=resolve, ours=True)
        link = is_symlink_at(parent, name)
    req.check(where, op, kernel=lambda: kernelorder.create(parent, name, want_dir=False))
    create_mode = (mode & 0o7777) & ~req.status.umask
    _refuse_privileged(req, where, create_mode, False, op)
    _room_for_fd(req)
    # O_EXCL always: the name was missing when we looked, and whatever
    # appears there since (a hard link renamed in from outside the sandbox)
    # has not been checked. Such a race is resolved again from the top.
    try:
        with req.as_target():
            fd = os.open(name, (flags | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY), create_mode, dir_fd=parent)
    except OSError as err:
        if err.errno == errno.ELOOP and not flags & os.O_NOFOLLOW:
            return None  # a symlink appeared after we looked: resolve again
        if err.errno == errno.EEXIST and not flags & os.O_EXCL:
            return None  # something appeared after we looked: resolve again
        raise
    return Fd(fd, cloexec)


def _open_flags_first(flags: int) -> None:
    err = kernelorder.open_flags_error(flags & 0xFFFFFFFF)
    if err:
        raise OSError(err, "open flags the kernel refuses")


def h_open(req):
    _open_flags_first(req.args[1])
    return do_open(req, libc.AT_FDCWD, req.path(0), req.args[1], req.args[2], 0, "open")


def h_openat(req):
    _open_flags_first(req.args[2])
    return do_open(req, req.dirfd(0), req.path(1), req.args[2], req.args[3], 0, "open")


def h_creat(req):
    flags = os.O_CREAT | os.O_WRONLY | os.O_TRUNC
    return do_open(req, libc.AT_FDCWD, req.path(0), flags, req.args[1], 0, "open")


def h_openat2(req):
    size = req.args[3]
    if size < 24:
        raise OSError(errno.EINVAL, "open_how too small")
    if size > 4096:
        raise OSError(errno.E2BIG, "open_how too big")
    raw = req.memory(req.args[2], size)
    if any(raw[24:]):
        raise OSError(errno.E2BIG, "unknown open_how fields")
    flags, mode, resolve = struct.unpack_from("=QQQ", raw)
    if flags >> 32 or resolve & ~libc.RESOLVE_ALL:
        raise OSError(errno.EINVAL, "bad open_how")
    if mode and not flags & (os.O_CREAT | 0o20000000):
        raise OSError(errno.EINVAL, "mode without O_CREAT")
    if resolve & libc.RESOLVE_BENEATH and resolve & libc.RESOLVE_IN_ROOT:
        raise OSError(errno.EINVAL, "RESOLVE_BENEATH with RESOLVE_IN_ROOT")
    err = kernelorder.open_flags_error(flags, mode, strict=True)
    if err:
        raise OSError(err, "open flags the kernel refuses")
    path = req.path(1)
    return do_open(req, req.dirfd(0), path, flags, mode, resolve, "open", strict=True)


def h_file_setattr(req):
    raise Denied(errno.EPERM, "(inode flags)", "changing inode flags is not emulated inside the sandbox", "file_setattr")


def h_open_by_handle_at(req):
    raise Denied(errno.EPERM, "(file handle)", "opening by file handle bypasses path checks", "open_by_handle_at")


# -- directory entries ---------------------------------------------------------


def _mkdir(req, dirfd, path, mode):
    parent, name, where = req.entry(dirfd, path)
    # The kernel answers EEXIST before any permission check (`mkdir -p ~/a/b`
    # walks existing ancestors): no refusal, no notice.
    try:
        os.lstat(name.rstrip(b"/") or name, dir_fd=parent)  # mkdir("file/") of a file: EEXIST too
    except FileNotFoundError:
        pass
    else:
        raise OSError(errno.EEXIST, "exists")
    req.check(where, "mkdir", kernel=lambda: kernelorder.create(parent, name, want_dir=True))
    req.check_name(where, "mkdir")
    with req.as_target():
        os.mkdir(name, (mode & 0o7777) & ~req.status.umask, dir_fd=parent)
    return 0


def h_mkdir(req):
    return _mkdir(req, libc.AT_FDCWD, req.path(0), req.args[1])


def h_mkdirat(req):
    return _mkdir(req, req.dirfd(0), req.path(1), req.args[2])


def _safe_device(info) -> bool:
    """True unless info is a block device or a character device other than
    the terminals and the null-like devices (1:3 null, 1:5 zero, 1:7 full,
    1:8 random, 1:9 urandom, 5:0 tty, 5:2 ptmx, 136-143 pts)."""
    if stat.S_ISBLK(info.st_mode):
        return False
    if not stat.S_ISCHR(info.st_mode):
        return True
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    return (major == 1 and minor in (3, 5, 7, 8, 9)) or (major == 5 and minor in (0, 2)) or 136 <= major <= 143


TIOCSCTTY = 0x540E
PTS_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR and the 7 after it
PTMX = os.makedev(5, 2)


def _is_pty(info) -> bool:
    return stat.S_ISCHR(info.st_mode) and os.major(info.st_rdev) in PTS_MAJORS


def _pty_index(rdev: int) -> int:
    return (os.major(rdev) - PTS_MAJORS[0]) * 256 + os.minor(rdev)


def _own_terminal(req, info) -> bool:
    """Is the pty info names one of the thread's own: its controlling
    terminal (what /dev/tty opens anyway), a pty it holds open for writing
    (inherited, or opened with our consent), or one whose master it holds
    (made through /dev/ptmx, which only makes new ones)? Root may open
    every terminal of the machine; a confined process writes only those it
    already has. A read-only open never reaches us, so a slave held only
    for reading proves nothing."""
    with open(f"/proc/{req.tid}/stat", "rb") as handle:
        tty_nr = int(handle.read().rsplit(b")", 1)[1].split()[4])
    if os.makedev((tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)) == info.st_rdev:
        return True
    fds = f"/proc/{req.tid}/fd"
    try:
        names = os.listdir(fds)
    except OSError:
        return False  # not ours to look into (not dumpable): not shown to be its own
    for name in names:
        try:
            held = os.stat(f"{fds}/{name}")
            if not stat.S_ISCHR(held.st_mode):
                continue
            slave = (held.st_dev, held.st_rdev) == (info.st_dev, info.st_rdev)
            if not slave and held.st_rdev != PTMX:
                continue
            with open(f"/proc/{req.tid}/fdinfo/{name}", "rb") as handle:
                fields = dict(line.split(b":", 1) for line in handle if b":" in line)
            if slave and int(fields[b"flags"], 8) & os.O_ACCMODE != os.O_RDONLY:
                return True
            if not slave and int(fields.get(b"tty-index", b"-1")) == _pty_index(info.st_rdev):
                return True
        except OSError:
            continue  # closed meanwhile
    return False


def _mknod(req, dirfd, path, mode, dev):
    err = kernelorder.mknod_mode_error(mode & 0xFFFFFFFF)
    if err:
        raise OSError(err, "a type mknod does not make")
    parent, name, where = req.entry(dirfd, path)
    req.check(where, "mknod", kernel=lambda: kernelorder.mknod(parent, name, mode, dev & 0xFFFFFFFF, req.status.fsuid))
    kind = mode & S_IFMT
    if kind in (stat.S_IFBLK, stat.S_IFCHR) and not (kind == stat.S_IFCHR and dev & 0xFFFFFFFF == 0):
        # Even in the project or /tmp: a disk's node left there lets anyone,
        # later and outside the sandbox, write the disk. (0:0 is a whiteout.)
        err, _ = kernelorder.create(parent, name, want_dir=False)
        if err != errno.EACCES:
            raise OSError(err, "the kernel's answer before it asks for CAP_MKNOD")
        if req.status.fsuid != 0:
            raise OSError(errno.EPERM, "no CAP_MKNOD: the kernel refuses it too")
        raise Denied(errno.EPERM, where, "device nodes cannot be created in the sandbox", "mknod")
    req.check_name(where, "mknod", special=kind not in (0, stat.S_IFREG))
    mode &= 0xFFFFFFFF
    perms = (mode & 0o7777) & ~req.status.umask
    _refuse_privileged(req, where, perms, False, "mknod")
    with req.as_target():
        os.mknod(name, (mode & S_IFMT) | perms, dev & 0xFFFFFFFF, dir_fd=parent)
    return 0


def h_mknod(req):
    return _mknod(req, libc.AT_FDCWD, req.path(0), req.args[1], req.args[2])


def h_mknodat(req):
    return _mknod(req, req.dirfd(0), req.path(1), req.args[2], req.args[3])


def _refuse_moving_a_root(req, parent: int, name: bytes, where: str, op: str) -> None:
    """A project root, a directory above one, or one the confined shell is
    in, stays where it is: moved away, the shell inside would look as if it
    had left (roots.py). Only the shell session guards directories; this
    runs for confined processes."""
    guarded = getattr(req.sup, "guarded_directories", None)
    name = name.rstrip(b"/")
    if guarded is None or name in (b".", b".."):
        return  # (the kernel refuses to move or remove those itself)
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode) and (info.st_dev, info.st_ino) in guarded():
        raise Denied(errno.EACCES, where, "a project root, a directory holding one, or the "
                     "directory the shell is in cannot be moved, replaced or removed from inside a project", op)


def _remove(req, dirfd, path, directory):
    parent, name, where = req.entry(dirfd, path)
    req.check(where, "rmdir" if directory else "unlink",
              kernel=lambda: kernelorder.remove(parent, name, directory=directory, fsuid=req.status.fsuid))
    try:
        req.check_name(where, "rmdir" if directory else "unlink")
        if directory:
            _refuse_moving_a_root(req, parent, name, where, "rmdir")
    except Denied:
        err, genuine = kernelorder.remove(parent, name, directory=directory, fsuid=req.status.fsuid)
        if not genuine:
            raise OSError(err, "the kernel would refuse it too") from None
        raise
    with req.as_target():
        if directory:
            os.rmdir(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)
    return 0


def h_unlink(req):
    return _remove(req, libc.AT_FDCWD, req.path(0), False)


def h_rmdir(req):
    return _remove(req, libc.AT_FDCWD, req.path(0), True)


def h_unlinkat(req):
    flags = _int(req.args[2])
    if flags & ~libc.AT_REMOVEDIR:
        raise OSError(errno.EINVAL, "bad flags")
    return _remove(req, req.dirfd(0), req.path(1), bool(flags & libc.AT_REMOVEDIR))


def _refuse_over_protected(req, where: str, op: str) -> None:
    """A rename or exchange moves, and a symlink redirects, everything
    beneath the name: refused when a protected path lies beneath it
    (mv .git .g; write .g/hooks/x; mv .g .git)."""
    pattern = policy.protected_beneath(req.sup.policy, where)
    if pattern is not None:
        raise Denied(errno.EACCES, where, f"the protected {pattern} lies beneath it", op)


def _rename(req, olddir, oldpath, newdir, newpath, flags):
    err = kernelorder.rename_flags_error(flags)
    if err:
        raise OSError(err, "rename flags the kernel refuses")
    old_parent, old_name, old_where = req.entry(olddir, oldpath)
    new_parent, new_name, new_where = req.entry(newdir, newpath)

    def kernel():
        return kernelorder.rename(old_parent, old_name, new_parent, new_name, flags, req.status.fsuid)

    try:
        req.check(old_where, "rename", kernel=kernel)
        req.check(new_where, "rename", kernel=kernel)
    except OSError as err:
        if err.errno == 0:
            return 0  # onto another name of the same inode: the kernel does nothing
        raise
    try:
        _refuse_moving_a_root(req, old_parent, old_name, old_where, "rename")
        _refuse_moving_a_root(req, new_parent, new_name, new_where, "rename")
        decision = policy.decide_rename(req.sup.policy, old_where, new_where, bool(flags & RENAME_EXCHANGE))
        if decision is not None and not decision.allow:
            raise Denied(errno.EACCES, new_where, decision.reason, "rename")
        _refuse_over_protected(req, old_where, "rename")
        _refuse_over_protected(req, new_where, "rename")
    except Denied:
        # These refusals too come after the kernel's own answers.
        err, genuine = kernel()
        if not genuine:
            if err == 0:
                return 0
            raise OSError(err, "the kernel would refuse it too") from None
        raise
    with req.as_target():
        libc.renameat2(old_parent, old_name, new_parent, new_name, flags)
    return 0


def h_rename(req):
    return _rename(req, libc.AT_FDCWD, req.path(0), libc.AT_FDCWD, req.path(1), 0)


def h_renameat(req):
    return _rename(req, req.dirfd(0), req.path(1), req.dirfd(2), req.path(3), 0)


def h_renameat2(req):
    return _rename(req, req.dirfd(0), req.path(1), req.dirfd(2), req.path(3), req.args[4] & 0xFFFFFFFF)


LINK_SOURCE = ("a hard link of a file this process may not change: its new name would be a way to change it "
               "(a copy works; `git clone` of a local path copies then)")


def _check_link_source(req, where: str, kernel) -> None:
    """The link's source must be writable too (invariant 3). Refused only
    for lying outside the writable roots, the notice says why and what
    works, not how to make the other place writable."""
    try:
        req.check(where, "link", kernel=kernel)
    except Denied as denied:
        if denied.reason != "outside every writable root":
            raise
        raise Denied(denied.errno, where, LINK_SOURCE, "link") from None


def _link(req, olddir, oldpath, newdir, newpath, flags):
    if flags & ~(libc.AT_SYMLINK_FOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    # The kernel looks the old name up first: its errors come first.
    if flags & libc.AT_EMPTY_PATH and oldpath == b"" or flags & libc.AT_SYMLINK_FOLLOW:
        pinned = req.pin(olddir, oldpath, follow=True, empty_ok=bool(flags & libc.AT_EMPTY_PATH))
        new_parent, new_name, new_where = req.entry(newdir, newpath)
        where = req.placed(pinned, "link")
        if not (is_deleted(where) and os.fstat(pinned).st_nlink == 0):
            # an O_TMPFILE file has no old place to check
            _check_link_source(req, where, lambda: kernelorder.link(pinned, True, new_parent, new_name, req.status.fsuid))
            req.check_name(where, "link")
        req.check(new_where, "link", kernel=lambda: kernelorder.link(pinned, False, new_parent, new_name, req.status.fsuid))
        req.check_name(new_where, "link")
        req.check_link(where, new_where)
        with req.as_target():
            libc.linkat(libc.AT_FDCWD, f"/proc/self/fd/{pinned}".encode(), new_parent, new_name, libc.AT_SYMLINK_FOLLOW)
        return 0
    if oldpath == b"":
        raise OSError(errno.ENOENT, "empty path")
    old = req.pin(olddir, oldpath, follow=False)  # its errors (ENOENT, ELOOP, ENOTDIR...) first
    old_parent, old_name, old_where = req.entry(olddir, oldpath)
    new_parent, new_name, new_where = req.entry(newdir, newpath)
    _check_link_source(req, old_where, lambda: kernelorder.link(old, True, new_parent, new_name, req.status.fsuid))
    req.check(new_where, "link", kernel=lambda: kernelorder.link(old, False, new_parent, new_name, req.status.fsuid))
    req.check_name(old_where, "link")
    req.check_name(new_where, "link")
    req.check_link(old_where, new_where)
    with req.as_target():
        libc.linkat(old_parent, old_name, new_parent, new_name, 0)
    return 0


def h_link(req):
    return _link(req, libc.AT_FDCWD, req.path(0), libc.AT_FDCWD, req.path(1), 0)


def h_linkat(req):
    return _link(req, req.dirfd(0), req.path(1), req.dirfd(2), req.path(3), _int(req.args[4]))


def _symlink_text(req, index: int) -> bytes:
    text = req.path(index)
    if text == b"":
        raise OSError(errno.ENOENT, "empty symlink text")  # getname() of the text comes first
    return text


def _symlink(req, text, newdir, newpath):
    parent, name, where = req.entry(newdir, newpath)
    req.check(where, "symlink", kernel=lambda: kernelorder.create(parent, name, want_dir=False))
    req.check_name(where, "symlink")
    _refuse_over_protected(req, where, "symlink")
    with req.as_target():
        os.symlink(text, name, dir_fd=parent)
    return 0


def h_symlink(req):
    return _symlink(req, _symlink_text(req, 0), libc.AT_FDCWD, req.path(1))


def h_symlinkat(req):
    return _symlink(req, _symlink_text(req, 0), req.dirfd(1), req.path(2))


# -- metadata and contents of existing objects ---------------------------------


def _object(req, dirfd, path, flags, *, allow_empty=True):
    """Pin the object an *at call with AT_ flags names."""
    follow = not flags & libc.AT_SYMLINK_NOFOLLOW
    empty_ok = allow_empty and bool(flags & libc.AT_EMPTY_PATH)
    return req.pin(dirfd, path, follow=follow, empty_ok=empty_ok)


def _truncate(req, pinned, length):
    req.check_fd(pinned, "truncate", kernel=lambda: kernelorder.truncate(pinned, os.fstat(pinned)))
    with req.as_target():
        os.truncate(f"/proc/self/fd/{pinned}", length)
    return 0


def h_truncate(req):
    length = ctypes.c_int64(req.args[1]).value
    if length < 0:
        raise OSError(errno.EINVAL, "negative length")  # before the path, as do_sys_truncate()
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=True)
    return _truncate(req, pinned, length)


def _privileged_mode(mode: int, is_dir: bool) -> bool:
    """Set-user-ID, or set-group-ID with group execute, on a non-directory:
    a program that runs later, outside the sandbox, as its owner."""
    if is_dir:
        return False
    return bool(mode & stat.S_ISUID) or (mode & stat.S_ISGID and mode & stat.S_IXGRP)


def _refuse_privileged(req, where: str, mode: int, is_dir: bool, op: str) -> None:
    if _privileged_mode(mode, is_dir):
        raise Denied(errno.EPERM, where, "set-user-ID and set-group-ID programs cannot be made in the sandbox", op)


def _chmod(req, pinned, mode):
    if stat.S_ISLNK(os.fstat(pinned).st_mode):
        raise OSError(errno.EOPNOTSUPP, "chmod of a symlink")  # notify_change(), before ownership
    where = req.check_fd(pinned, "chmod", errno.EPERM, metadata=True,
                         kernel=lambda: kernelorder.chmod(pinned, req.status.fsuid))
    _refuse_privileged(req, where, mode, stat.S_ISDIR(os.fstat(pinned).st_mode), "chmod")
    with req.as_target():
        try:
            libc.fchmodat2(pinned, b"", mode & 0o7777, libc.AT_EMPTY_PATH)
        except OSError as err:
            if err.errno != errno.ENOSYS:
                raise
            if stat.S_ISLNK(os.fstat(pinned).st_mode):
                raise OSError(errno.EOPNOTSUPP, "chmod of a symlink") from None
            os.chmod(f"/proc/self/fd/{pinned}", mode & 0o7777)
    return 0


def h_chmod(req):
    return _chmod(req, req.pin(libc.AT_FDCWD, req.path(0), follow=True), req.args[1])


def h_fchmodat(req):
    return _chmod(req, req.pin(req.dirfd(0), req.path(1), follow=True), req.args[2])


def h_fchmodat2(req):
    flags = _int(req.args[3])
    if flags & ~(libc.AT_SYMLINK_NOFOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    path = req.optional_path(1) or b""
    return _chmod(req, _object(req, req.dirfd(0), path, flags), req.args[2])


def _fd_only(req, index: int) -> int:
    """The object behind a target's fd for a call that takes an fd alone:
    an O_PATH fd is no fd to such a call (EBADF)."""
    fd = req.dirfd(index)
    if fd >= 0 and kernelorder.fd_is_path_only(req.tid, fd):
        raise OSError(errno.EBADF, "an O_PATH fd")
    return req.fd_object(fd)


def h_fchmod(req):
    return _chmod(req, _fd_only(req, 0), req.args[1])


def _chown(req, pinned, uid, gid):
    st = req.status
    req.check_fd(pinned, "chown", errno.EPERM, metadata=True,
                 kernel=lambda: kernelorder.chown(pinned, uid, gid, st.fsuid, st.groups))
    with req.as_target():
        libc.fchownat(pinned, b"", uid, gid, libc.AT_EMPTY_PATH)
    return 0


def h_chown(req):
    return _chown(req, req.pin(libc.AT_FDCWD, req.path(0), follow=True), req.args[1], req.args[2])


def h_lchown(req):
    return _chown(req, req.pin(libc.AT_FDCWD, req.path(0), follow=False), req.args[1], req.args[2])


def h_fchownat(req):
    flags = _int(req.args[4])
    if flags & ~(libc.AT_SYMLINK_NOFOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    return _chown(req, _object(req, req.dirfd(0), req.path(1), flags), req.args[2], req.args[3])


def h_fchown(req):
    return _chown(req, _fd_only(req, 0), req.args[1], req.args[2])


def _utimens(req, pinned, pairs):
    """pairs: ((atime sec, nsec), (mtime sec, nsec)), or None for now."""
    err = kernelorder.times_error(pairs)
    if err:
        raise OSError(err, "nanoseconds out of range")
    req.check_fd(pinned, "utimes", errno.EPERM, metadata=True,
                 kernel=lambda: kernelorder.utimes(pinned, pairs, req.status.fsuid))
    times = None if pairs is None else _timespecs(pairs)
    with req.as_target():
        libc.utimensat(pinned, b"", times, libc.AT_EMPTY_PATH)
    return 0


def _timespecs(pairs):
    return (libc.Timespec * 2)(*(libc.Timespec(s, ns) for s, ns in pairs))


def h_utimensat(req):
    flags = _int(req.args[3])
    pairs = None
    if req.args[2]:
        secs = struct.unpack("=qqqq", req.memory(req.args[2], 32))
        pairs = ((secs[0], secs[1]), (secs[2], secs[3]))
        if secs[1] == secs[3] == kernelorder.UTIME_OMIT:
            return 0  # nothing to do: the kernel looks at nothing else, not even the path
    if flags & ~(libc.AT_SYMLINK_NOFOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    path = req.optional_path(1)
    if path is None:
        if flags:
            raise OSError(errno.EINVAL, "flags with no path")
        pinned = _fd_only(req, 0)  # futimens(fd, times)
    else:
        pinned = _object(req, req.dirfd(0), path, flags)
    return _utimens(req, pinned, pairs)


def _timevals(req, addr):
    if not addr:
        return None
    sec0, usec0, sec1, usec1 = struct.unpack("=qqqq", req.memory(addr, 32))
    if not (0 <= usec0 < 1_000_000 and 0 <= usec1 < 1_000_000):
        raise OSError(errno.EINVAL, "bad timeval")
    return (sec0, usec0 * 1000), (sec1, usec1 * 1000)


def h_utimes(req):
    pairs = _timevals(req, req.args[1])
    return _utimens(req, req.pin(libc.AT_FDCWD, req.path(0), follow=True), pairs)


def h_futimesat(req):
    pairs = _timevals(req, req.args[2])
    path = req.optional_path(1)
    pinned = _fd_only(req, 0) if path is None else req.pin(req.dirfd(0), path, follow=True)
    return _utimens(req, pinned, pairs)


def h_utime(req):
    pairs = None
    if req.args[1]:
        actime, modtime = struct.unpack("=qq", req.memory(req.args[1], 16))
        pairs = (actime, 0), (modtime, 0)
    return _utimens(req, req.pin(libc.AT_FDCWD, req.path(0), follow=True), pairs)


def _xattr_name(req, index):
    try:
        name = target.read_cstring(req.tid, req.args[index], XATTR_NAME_MAX + 1)
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise OSError(errno.ERANGE, "xattr name too long") from None
        raise
    req.validate()
    if not name:
        raise OSError(errno.ERANGE, "empty xattr name")
    return name


def _setxattr(req, pinned, name, value, flags, op):
    fsuid = req.status.fsuid
    where = req.check_fd(pinned, op, errno.EPERM, metadata=True,
                         kernel=lambda: kernelorder.xattr(pinned, name, value is None, flags, fsuid))
    if value is not None and name == b"security.capability":
        if fsuid != 0:
            raise OSError(errno.EPERM, "no CAP_SETFCAP: the kernel refuses it too")
        # file capabilities make a program privileged for whoever runs it later
        raise Denied(errno.EPERM, where, "file capabilities cannot be set in the sandbox", op)
    if stat.S_ISLNK(os.fstat(pinned).st_mode):
        # user.* never goes on a symlink; a name no handler takes is EOPNOTSUPP
        known = name.startswith((b"user.", b"trusted.", b"security.", b"system."))
        raise OSError(errno.EPERM if known else errno.EOPNOTSUPP, "xattr on a symlink")
    with req.as_target():
        if value is None:
            os.removexattr(f"/proc/self/fd/{pinned}", name)
        else:
            os.setxattr(f"/proc/self/fd/{pinned}", name, value, flags)
    return 0


def _xattr_value(req, addr, size):
    if size > target.XATTR_SIZE_MAX:
        raise OSError(errno.E2BIG, "xattr value too big")
    return req.memory(addr, size) if size else b""


def _xattr_args(req, name_addr_index: int, value_addr: int, size: int, flags: int):
    """setxattr_copy(): flags, name and value are checked, in this order,
    before the path is even looked at."""
    if flags & ~(kernelorder.XATTR_CREATE | kernelorder.XATTR_REPLACE):
        raise OSError(errno.EINVAL, "bad xattr flags")
    name = _xattr_name(req, name_addr_index)
    return name, _xattr_value(req, value_addr, size), flags


def _set_args(req):
    """(name, value, flags) of setxattr, lsetxattr and fsetxattr."""
    return _xattr_args(req, 1, req.args[2], req.args[3], _int(req.args[4]))


def h_setxattr(req):
    name, value, flags = _set_args(req)
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=True)
    return _setxattr(req, pinned, name, value, flags, "setxattr")


def h_lsetxattr(req):
    name, value, flags = _set_args(req)
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=False)
    return _setxattr(req, pinned, name, value, flags, "setxattr")


def h_fsetxattr(req):
    name, value, flags = _set_args(req)
    pinned = _fd_only(req, 0)
    return _setxattr(req, pinned, name, value, flags, "setxattr")


def h_removexattr(req):
    name = _xattr_name(req, 1)
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=True)
    return _setxattr(req, pinned, name, None, 0, "removexattr")


def h_lremovexattr(req):
    name = _xattr_name(req, 1)
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=False)
    return _setxattr(req, pinned, name, None, 0, "removexattr")


def h_fremovexattr(req):
    name = _xattr_name(req, 1)
    return _setxattr(req, _fd_only(req, 0), name, None, 0, "removexattr")


def _at_flags(req, index: int) -> int:
    flags = _int(req.args[index])
    if flags & ~(libc.AT_SYMLINK_NOFOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    return flags


def h_setxattrat(req):
    flags = _at_flags(req, 2)
    if req.args[5] < 16:
        raise OSError(errno.EINVAL, "xattr_args too small")
    if req.args[5] > 4096:
        raise OSError(errno.E2BIG, "xattr_args too big")
    raw = req.memory(req.args[4], req.args[5])
    if any(raw[16:]):
        raise OSError(errno.E2BIG, "unknown xattr_args fields")
    value_addr, size, xflags = struct.unpack_from("=QII", raw)
    name, value, xflags = _xattr_args(req, 3, value_addr, size, xflags)
    path = req.optional_path(1) or b""
    pinned = _object(req, req.dirfd(0), path, flags)
    return _setxattr(req, pinned, name, value, xflags, "setxattr")


def h_removexattrat(req):
    flags = _at_flags(req, 2)
    name = _xattr_name(req, 3)
    path = req.optional_path(1) or b""
    pinned = _object(req, req.dirfd(0), path, flags)
    return _setxattr(req, pinned, name, None, 0, "removexattr")


# -- inode flags through ioctl --------------------------------------------------

# The size of what each trapped ioctl reads from its argument.
_IOCTL_ARG = {
    0x40086602: 4,  # FS_IOC_SETFLAGS: the kernel reads an int
    0x40046602: 4,  # FS_IOC32_SETFLAGS
    0x401C5820: 28,  # FS_IOC_FSSETXATTR: struct fsxattr
    0x40087602: 4,  # FS_IOC_SETVERSION
    0x40047602: 4,  # FS_IOC32_SETVERSION
}


def h_ioctl(req):
    """chattr and friends: they change the inode behind an fd that may have
    been opened read-only on a file outside. The call is made on a duplicate
    of the target's own open file (pidfd_getfd), so it behaves exactly as
    it would for the target, once the file's location is allowed."""
    cmd = req.args[1] & 0xFFFFFFFF
    if cmd == TIOCSCTTY:  # the shell session sends the stealing form here: refused when confined
        raise OSError(errno.EPERM, "taking another session's terminal")
    size = _IOCTL_ARG.get(cmd)
    if size is None:
        raise OSError(errno.ENOSYS, "not an emulated ioctl")
    fd = req.dirfd(0)
    if fd < 0:
        raise OSError(errno.EBADF, "bad fd")
    theirs = _their_file(req, fd)
    req.check_fd(theirs, "chattr", errno.EPERM, metadata=True)
    data = req.memory(req.args[2], size)
    buf = ctypes.create_string_buffer(data, size)
    with req.as_target():
        libc.ioctl(theirs, cmd, ctypes.addressof(buf))
    return 0


def _their_file(req, fd: int) -> int:
    """A duplicate of the target's open file fd (EBADF when there is none)."""
    pidfd = req.keep(os.pidfd_open(req.tgid))
    try:
        return req.keep(libc.pidfd_getfd(pidfd, fd))
    except OSError as err:
        if err.errno == errno.ESRCH:
            raise Vanished() from None
        raise


# -- other processes -----------------------------------------------------------


def _descendant(req, pid, op, ptrace_request=None):
    if pid <= 0:
        raise OSError(errno.ESRCH, "no such process")
    # Judged on the process pinned by a pidfd, never on whatever holds the
    # pid later (see pinned).
    pidfd = req.keep(pinned.pin(pid))
    decision = policy.decide_trace(req.tgid, target.ancestry(pid))
    if not decision.allow:
        raise Denied(errno.EPERM, f"pid {pid} ({target.comm(pid)})", decision.reason, op)
    if not pinned.running(pidfd):
        raise OSError(pinned.exited_errno(ptrace_request), "the target exited during the decision")
    req.validate()
    return CONTINUE


def h_seccomp(req):
    """A second notify listener asked for (only that is trapped): the kernel
    answers EBUSY, since one listener per filter chain is allowed; the
    flags are registers, so letting the kernel answer decides nothing."""
    from .nested import tell_listener_refused

    tell_listener_refused(req)
    return CONTINUE


def h_ptrace(req):
    if req.args[0] == PTRACE_TRACEME:
        # The parent becomes the tracer. When that parent is peninsula (the
        # supervisor, or a session's zygote), nobody would ever resume the
        # traced process after its next signal: the run would hang.
        if target.parent_of(req.tgid) in req.sup.own_pids:
            raise Denied(errno.EPERM, f"pid {req.tgid} ({target.comm(req.tgid)})",
                         "its parent is peninsula, which is not a debugger", "ptrace")
        return CONTINUE
    return _descendant(req, _int(req.args[1]), "ptrace", req.args[0])


def h_process_vm_writev(req):
    return _descendant(req, _int(req.args[0]), "process_vm_writev")


def h_pidfd_getfd(req):
    """Done here, on a duplicate of the target's pidfd: answering CONTINUE
    after reading which process its fd number names would let another
    thread put a different pidfd under that number in between."""
    if req.args[2] & 0xFFFFFFFF:
        raise OSError(errno.EINVAL, "flags must be 0")
    number, wanted = _int(req.args[0]), _int(req.args[1])
    if number < 0:
        raise OSError(errno.EBADF, "bad pidfd")
    pidfd = _their_file(req, number)
    pid = target.pidfd_target(os.getpid(), pidfd)
    if pid <= 0:
        raise OSError(errno.ESRCH, "the process has exited")
    decision = policy.decide_trace(req.tgid, target.ancestry(pid))
    if not decision.allow:
        raise Denied(errno.EPERM, f"pid {pid} ({target.comm(pid)})", decision.reason, "pidfd_getfd")
    return Fd(libc.pidfd_getfd(pidfd, wanted), True)


def handlers() -> dict[int, object]:
    """Syscall number -> handler, for the syscalls this kernel knows."""
    from .seccomp import syscall_number

    table = {}
    for name, func in globals().items():
        if name.startswith("h_"):
            number = syscall_number(name[2:])
            if number is not None:
                table[number] = _acting(func)
    from . import sockets

    table[syscall_number("connect")] = _acting(sockets.h_connect)
    table[syscall_number("sendto")] = _acting(sockets.h_sendto)
    return table


def _acting(func):
    """Run a handler, resolution included, with the target's identity."""

    def run(req):
        with req.as_target():
            return func(req)

    run.__name__ = run.__qualname__ = func.__name__
    return run
