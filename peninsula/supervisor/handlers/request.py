"""What every handler works with: the trapped request, its identity, and how it answers.

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
import stat
from peninsula.kernel import caps
from peninsula.config import direnv as direnvrecords
from peninsula.supervisor.handlers import kernelorder
from peninsula.kernel import libc
from peninsula.policy import engine as policy
from peninsula.kernel import target
from peninsula.kernel.resolve import Context, is_anonymous, is_deleted, location, reachable
from peninsula.supervisor.handlers.devices import is_pty, own_terminal, safe_device


NR_SETGROUPS, NR_SETFSUID, NR_SETFSGID = 116, 122, 123
_MINE: tuple | None = None
_MY_CAPS: tuple | None = None

O_TMPFILE = 0o20000000 | os.O_DIRECTORY


O_WRITE_INTENT = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC


UTIME_OMIT = (1 << 30) - 2


RENAME_EXCHANGE = 2


XATTR_NAME_MAX = 255


PTRACE_TRACEME = 0


S_IFMT = 0o170000


class Denied(Exception):
    """A refusal: logged, and noticed on the terminal unless noticed is
    False (a refusal the tool is known to handle on its own, see
    names.CROSS_BOUNDARY)."""

    def __init__(self, err: int, path: str, reason: str, op: str, *, noticed: bool = True):
        super().__init__(reason)
        # Names that are not UTF-8 are shown with \x escapes: the notice, the
        # log and the JSON result must all be able to carry the path.
        path = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        self.errno, self.path, self.reason, self.op = err, path, reason, op
        self.noticed = noticed


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
            elif is_pty(info):
                if not own_terminal(self, info):
                    raise Denied(err, where, "a terminal that is not one of the process's own", op)
            elif not safe_device(info):
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


def set_identity(uid: int, gid: int, groups: tuple[int, ...]) -> None:
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


def own_identity() -> tuple:
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
        mine = own_identity()
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
                    set_identity(*wanted)
                except OSError:
                    set_identity(*mine)
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
            set_identity(*own_identity())
        return False


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
            set_identity(*own_identity())
        raise
    req._capped = True


def signed_int(value: int) -> int:
    return ctypes.c_int(value & 0xFFFFFFFF).value


def object_at(req, dirfd, path, flags, *, allow_empty=True):
    """Pin the object an *at call with AT_ flags names."""
    follow = not flags & libc.AT_SYMLINK_NOFOLLOW
    empty_ok = allow_empty and bool(flags & libc.AT_EMPTY_PATH)
    return req.pin(dirfd, path, follow=follow, empty_ok=empty_ok)


def fd_only(req, index: int) -> int:
    """The object behind a target's fd for a call that takes an fd alone:
    an O_PATH fd is no fd to such a call (EBADF)."""
    fd = req.dirfd(index)
    if fd >= 0 and kernelorder.fd_is_path_only(req.tid, fd):
        raise OSError(errno.EBADF, "an O_PATH fd")
    return req.fd_object(fd)


def at_flags(req, index: int) -> int:
    flags = signed_int(req.args[index])
    if flags & ~(libc.AT_SYMLINK_NOFOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    return flags


def their_file(req, fd: int) -> int:
    """A duplicate of the target's open file fd (EBADF when there is none)."""
    pidfd = req.keep(os.pidfd_open(req.tgid))
    try:
        return req.keep(libc.pidfd_getfd(pidfd, fd))
    except OSError as err:
        if err.errno == errno.ESRCH:
            raise Vanished() from None
        raise


def acting(func):
    """Run a handler, resolution included, with the target's identity."""

    def run(req):
        with req.as_target():
            return func(req)

    run.__name__ = run.__qualname__ = func.__name__
    return run


def _privileged_mode(mode: int, is_dir: bool) -> bool:
    """Set-user-ID, or set-group-ID with group execute, on a non-directory:
    a program that runs later, outside the sandbox, as its owner."""
    if is_dir:
        return False
    return bool(mode & stat.S_ISUID) or (mode & stat.S_ISGID and mode & stat.S_IXGRP)


def refuse_privileged(req, where: str, mode: int, is_dir: bool, op: str) -> None:
    if _privileged_mode(mode, is_dir):
        raise Denied(errno.EPERM, where, "set-user-ID and set-group-ID programs cannot be made in the sandbox", op)
