"""open, openat, openat2, creat, open_by_handle_at: write-intent opens.
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
from peninsula.supervisor.handlers import kernelorder
from peninsula.kernel import libc
from peninsula.kernel import target
from peninsula.kernel.resolve import MAX_SYMLINKS, is_symlink_at, location
from peninsula.supervisor.handlers.request import CONTINUE, Deferred, Denied, Fd, O_TMPFILE, O_WRITE_INTENT, Request, _libc, own_identity, set_identity
from peninsula.supervisor.handlers.request import refuse_privileged


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
        refuse_privileged(req, location(pinned) + "/", create_mode, False, op)
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
        from peninsula.kernel.seccomp import Listener

        listener = Listener(listener_fd)  # its own request buffers
        tid = threading.get_ident()
        opened = -1
        try:
            if identity != own_identity():
                set_identity(*identity)  # this thread only
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
    refuse_privileged(req, where, create_mode, False, op)
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


def h_open_by_handle_at(req):
    raise Denied(errno.EPERM, "(file handle)", "opening by file handle bypasses path checks", "open_by_handle_at")
