"""Resolve a target's path the way the kernel would, and pin what it names.

The supervisor never re-reads a path and never lets the kernel resolve it
again for the target. It resolves relative to the target's own cwd, dirfd or
/proc entries, with RESOLVE_NO_MAGICLINKS, and keeps an O_PATH fd on the
result; the decision is made on where that fd really is
(/proc/self/fd/N as the kernel names it) and the call is then made on the fd.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import stat

from peninsula.kernel import libc, procgate, target

O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
MAX_SYMLINKS = 40
PATH_MAX = 4096

_MAGIC = re.compile(
    rb"^/(?:proc/(?P<who>self|thread-self|\d+)(?:/task/(?P<task>\d+))?"
    rb"/(?:(?P<fdkind>fd)/(?P<fd>\d+)|(?P<dir>cwd|root))"
    rb"|dev/(?:fd/(?P<devfd>\d+)|(?P<std>stdin|stdout|stderr)))(?P<rest>/.*)?$"
)
_STD = {b"stdin": 0, b"stdout": 1, b"stderr": 2}
_OWN_PROC = re.compile(rb"^/proc/(?P<pid>\d+)(?:/task/(?P<tid>\d+))?(?P<fd>/fd)?$")


class Context:
    """One request's view of the target; owns the fds opened for it."""

    tgid: int  # the thread group (process) of tid; subclasses may find it lazily

    def __init__(self, tid: int, tgid: int | None = None):
        self.tid = tid
        if tgid is not None:
            self.tgid = tgid
        self._fds: list[int] = []

    def keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()

    @property
    def status(self) -> target.Status:
        """The target's credentials (a subclass may keep them)."""
        return target.Status(self.tid)

    def _creds(self) -> target.Status:
        return self.status

    def _gate(self, base: int, path: bytes, resolve: int, err: OSError, *, into_last: bool,
              directory: bool = False) -> OSError:
        """err, or EACCES where the target's own walk is refused on the way
        in one of our ptrace-gated /proc directories, or the errno of its
        walk in its own mount namespace (procgate). into_last: the last
        name is followed; directory: path names a directory to walk on."""
        if err.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return err
        if procgate.refused_on_the_way(base, path, resolve, _proc_dev(), self._creds, location, into_last=into_last):
            return OSError(errno.EACCES, "the target cannot search the supervisor's /proc entries")
        if base == libc.AT_FDCWD and path.startswith(b"/"):
            flags = O_PATH_DIR if directory else os.O_PATH | (0 if into_last else os.O_NOFOLLOW)
            theirs = procgate.errno_in_their_tree(self.tid, path, flags)
            if theirs is not None and theirs != err.errno:
                return OSError(theirs, "the target's own mount namespace answers otherwise")
        return err

    # -- the target's anchors -------------------------------------------------

    def cwd_fd(self) -> int:
        return self.keep(os.open(f"/proc/{self.tid}/cwd", O_PATH_DIR))

    def fd_object(self, fd: int) -> int:
        """An O_PATH fd on the object behind the target's fd number."""
        if fd < 0 or fd > 0x7FFFFFFF:
            raise OSError(errno.EBADF, "bad fd")
        try:
            return self.keep(os.open(f"/proc/{self.tid}/fd/{fd}", os.O_PATH | os.O_CLOEXEC))
        except FileNotFoundError:
            raise OSError(errno.EBADF, "bad fd") from None

    def base(self, dirfd: int, path: bytes, ours: bool = False, resolve: int = 0) -> tuple[int, bytes]:
        """The fd to resolve path from, and the path relative to it.

        /proc/self, /dev/fd and /dev/std* name the target's objects, not
        ours: they are pinned here from the target's /proc entries. Under
        RESOLVE_BENEATH or RESOLVE_IN_ROOT an absolute path is resolved from
        dirfd (openat2 then refuses it or treats dirfd as the root), so it
        never names anything in /proc or /dev.
        """
        scoped = resolve & (libc.RESOLVE_BENEATH | libc.RESOLVE_IN_ROOT)
        if not scoped and path.startswith((b"/proc/", b"/dev/")):
            magic = _MAGIC.match(path)
            if magic is not None and self._is_own(magic.group("who")):
                # /dev/fd, /dev/std* and /proc/self are symlinks and fd, cwd
                # and root are magic links; /proc and /dev are other mounts.
                if resolve & (libc.RESOLVE_NO_SYMLINKS | libc.RESOLVE_NO_MAGICLINKS):
                    raise OSError(errno.ELOOP, "magic link refused by RESOLVE flags")
                if resolve & libc.RESOLVE_NO_XDEV:
                    raise OSError(errno.EXDEV, "crosses a mount")
                rest = (magic.group("rest") or b"").lstrip(b"/")
                anchor = self._magic_anchor(magic)
                return anchor, rest
            if path.startswith(b"/proc/self/") or path == b"/proc/self":
                if resolve & libc.RESOLVE_NO_SYMLINKS:
                    raise OSError(errno.ELOOP, "/proc/self is a symlink")
                return libc.AT_FDCWD, b"/proc/%d" % self.tgid + path[len(b"/proc/self") :]
            if path.startswith(b"/proc/thread-self"):
                if resolve & libc.RESOLVE_NO_SYMLINKS:
                    raise OSError(errno.ELOOP, "/proc/thread-self is a symlink")
                return libc.AT_FDCWD, b"/proc/%d/task/%d" % (self.tgid, self.tid) + path[len(b"/proc/thread-self") :]
        if path.startswith(b"/") and not scoped:
            return libc.AT_FDCWD, path
        if ours:
            return dirfd, path  # dirfd is the supervisor's own pinned fd
        if dirfd == libc.AT_FDCWD:
            return self.cwd_fd(), path
        return self.fd_object(dirfd), path

    def _is_own(self, who: bytes | None) -> bool:
        if who is None or who in (b"self", b"thread-self"):
            return True
        return int(who) in (self.tgid, self.tid)

    def _magic_anchor(self, magic: "re.Match[bytes]") -> int:
        tid = int(magic.group("task")) if magic.group("task") else self.tid
        if magic.group("dir"):
            which = magic.group("dir").decode()
            return self.keep(os.open(f"/proc/{tid}/{which}", O_PATH_DIR))
        if magic.group("std"):
            number = _STD[magic.group("std")]
        else:
            number = int(magic.group("fd") or magic.group("devfd"))
        try:
            return self.fd_object(number)
        except OSError as err:
            # EBADF is a dirfd argument's answer; a path naming an fd that
            # is not open finds no such entry in /proc/PID/fd.
            if err.errno == errno.EBADF:
                raise OSError(errno.ENOENT, "no such fd") from None
            raise

    # -- resolution -----------------------------------------------------------

    def pin(self, dirfd: int, path: bytes, *, follow: bool, resolve: int = 0, empty_ok: bool = False,
            creating: bool = False, ours: bool = False, _depth: int = 0) -> int:
        """An O_PATH fd on the existing object path names.

        A last component that is a symlink to /proc/self/..., /dev/fd/N or
        /dev/std* (log -> /dev/stdout) names the target's object: the kernel
        would resolve it in the target. Our own fast resolution refuses
        magic links (ELOOP) or finds nothing in our own fd table (ENOENT),
        so on those errors the link is read and resolved for the target.
        """
        if path == b"" and not empty_ok:
            raise OSError(errno.ENOENT, "empty path")
        if path:
            base, rest = self.base(dirfd, path, ours, resolve)
        else:
            base, rest = (dirfd if ours else self.fd_object(dirfd)), b""
        if rest == b"":
            if base == libc.AT_FDCWD:
                raise OSError(errno.ENOENT, "empty path")
            return base
        flags = os.O_PATH | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
        try:
            fd = self.keep(libc.openat2(base, rest, flags, 0, resolve | libc.RESOLVE_NO_MAGICLINKS))
        except OSError as err:
            if (
                not follow
                or _depth >= MAX_SYMLINKS
                or resolve & (libc.RESOLVE_NO_SYMLINKS | libc.RESOLVE_NO_MAGICLINKS)
                or not (err.errno == errno.ELOOP or (err.errno == errno.ENOENT and not creating))
            ):
                if _depth:
                    raise
                raise self._gate(base, rest, resolve, err, into_last=follow) from None
            try:
                return self._pin_slow(base, rest, resolve, err, _depth)
            except OSError as slow:
                if _depth:
                    raise
                raise self._gate(base, rest, resolve, slow, into_last=follow) from None
        return self.retarget(fd, flags, resolve)

    def _pin_slow(self, base: int, rest: bytes, resolve: int, err: OSError, depth: int) -> int:
        """Resolve the last component ourselves: its parent may have been
        reached through our /proc/self (mapped to the target's), and the
        component may be a symlink to, or be, one of the target's magic
        links."""
        stripped = rest.rstrip(b"/")
        head, sep, name = stripped.rpartition(b"/")
        if sep and head == b"":
            head = b"/"
        try:
            parent, moved = self._directory(base, head or b".", resolve, depth)
        except OSError:
            raise err from None
        if name in (b"", b".", b".."):
            if not moved:
                raise err
            return self.pin(parent, name or b".", follow=True, resolve=resolve, ours=True, _depth=depth + 1)
        magic = self._own_magic(parent, name)
        if magic is not None:
            return magic
        text = is_symlink_at(parent, name)
        if text is not None and text.startswith((b"/proc/", b"/dev/")):
            return self.pin(parent, text, follow=True, resolve=resolve, ours=True, _depth=depth + 1)
        if not moved:
            raise err
        return self.pin(parent, name, follow=True, resolve=resolve, ours=True, _depth=depth + 1)

    def _directory(self, base: int, path: bytes, resolve: int, depth: int = 0) -> tuple[int, bool]:
        """An O_PATH fd on the directory path names, and whether it had to
        be found another way than a plain kernel resolution."""
        try:
            fd = self.keep(libc.openat2(base, path, O_PATH_DIR, 0, resolve | libc.RESOLVE_NO_MAGICLINKS))
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOENT) or depth >= MAX_SYMLINKS or path in (b".", b"/"):
                raise
            if resolve & (libc.RESOLVE_NO_SYMLINKS | libc.RESOLVE_NO_MAGICLINKS):
                raise
            fd = self._pin_slow(base, path, resolve, err, depth + 1)
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(errno.ENOTDIR, "not a directory") from None
            return fd, True
        mapped = self.retarget(fd, O_PATH_DIR, resolve)
        return mapped, mapped != fd

    def _own_magic(self, parent: int, name: bytes) -> int | None:
        """Follow name when it is one of the target's own magic links
        (/proc/TGID[/task/TID]/{cwd,root} or .../fd/N): those name the
        target's objects, which is what the kernel would give the target."""
        if os.fstat(parent).st_dev != _proc_dev():
            return None
        own = _OWN_PROC.match(os.fsencode(location(parent)))
        if own is None or not self._is_own(own.group("pid")):
            return None
        if own.group("tid") and not self._is_own(own.group("tid")):
            return None
        if own.group("fd"):
            if not name.isdigit():
                return None
        elif name not in (b"cwd", b"root"):
            return None
        try:
            return self.keep(os.open(name, os.O_PATH | os.O_CLOEXEC, dir_fd=parent))
        except FileNotFoundError:
            raise OSError(errno.ENOENT, "no such fd") from None

    def retarget(self, fd: int, flags: int, resolve: int) -> int:
        """A path that went through /proc/self or /proc/thread-self by a way
        base() did not see (/proc/./self, a relative path from /proc, a
        symlink) was resolved in the supervisor, not the target: map the
        result to the target's own /proc entry, never ours."""
        if os.fstat(fd).st_dev != _proc_dev():
            return fd
        where = location(fd)
        me = f"/proc/{os.getpid()}"
        if where != me and not where.startswith(me + "/"):
            return fd
        tail = where[len(me):]
        if tail.startswith("/task/"):
            _, _, after = tail[len("/task/"):].partition("/")
            mapped = f"/proc/{self.tgid}/task/{self.tid}" + ("/" + after if after else "")
        else:
            mapped = f"/proc/{self.tgid}" + tail
        return self.keep(libc.openat2(libc.AT_FDCWD, os.fsencode(mapped), flags, 0, resolve | libc.RESOLVE_NO_MAGICLINKS))

    def entry(self, dirfd: int, path: bytes, *, resolve: int = 0, ours: bool = False) -> tuple[int, bytes, str]:
        """The pinned parent directory of path's last component, that name,
        and the location of the entry. The last component is not followed."""
        if path == b"":
            raise OSError(errno.ENOENT, "empty path")
        base, rest = self.base(dirfd, path, ours, resolve)
        if rest == b"":
            # A magic link names an object, not a directory entry.
            raise OSError(errno.EEXIST if base != libc.AT_FDCWD else errno.ENOENT, "not an entry")
        stripped = rest.rstrip(b"/")
        if stripped == b"":
            if base != libc.AT_FDCWD:  # "/" under RESOLVE_IN_ROOT: the root itself
                return base, b".", location(base)
            return self.keep(os.open("/", O_PATH_DIR)), b".", "/"
        head, _, name = stripped.rpartition(b"/")
        if stripped.startswith(b"/") and head == b"":
            head = b"/"
        # (a directory may be reached through a symlink to /proc/self/cwd or /dev/fd/N)
        try:
            parent, _ = self._directory(base, head or b".", resolve)
        except OSError as err:
            raise self._gate(base, head or b".", resolve, err, into_last=True, directory=True) from None
        if os.fstat(parent).st_dev == _proc_dev() and procgate.refused_on_the_way(
                base, stripped, resolve, _proc_dev(), self._creds, location, into_last=False):
            raise OSError(errno.EACCES, "the target cannot search the supervisor's /proc entries")
        if rest.endswith(b"/"):
            name += b"/"
        return parent, name, join(location(parent), name)


_PROC_DEV: list[int] = []


def _proc_dev() -> int:
    if not _PROC_DEV:
        _PROC_DEV.append(os.stat("/proc").st_dev)
    return _PROC_DEV[0]


def location(fd: int) -> str:
    """Where the kernel says the pinned object lives."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG:
            raise
    return _long_location(fd)


def reachable(fd: int, where: str) -> bool:
    """Does where, resolved from our own root, name the pinned object?

    The kernel names an object on a detached mount (open_tree) or on a
    mount of another mount namespace relative to that mount's own root:
    ~/tmp/x can read as /tmp/x. The string is believed only when it leads
    here, in the supervisor's namespace, to the same device and inode."""
    try:
        named = _lstat_long(where) if len(os.fsencode(where)) >= PATH_MAX else os.stat(where, follow_symlinks=False)
    except (OSError, ValueError):
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _lstat_long(where: str) -> os.stat_result:
    """lstat of a path longer than PATH_MAX (_long_location's), a piece
    shorter than PATH_MAX at a time."""
    *dirs, last = where.split("/")[1:]
    pieces: list[list[str]] = [[]]
    for name in dirs:
        if sum(len(os.fsencode(n)) + 1 for n in pieces[-1]) + len(os.fsencode(name)) >= PATH_MAX - 1:
            pieces.append([])
        pieces[-1].append(name)
    current = os.open("/", O_PATH_DIR)
    try:
        for piece in pieces:
            if piece:
                step = os.open("/".join(piece), O_PATH_DIR, dir_fd=current)
                os.close(current)
                current = step
        return os.stat(last, dir_fd=current, follow_symlinks=False)
    finally:
        os.close(current)


def _long_location(fd: int) -> str:
    """The location of a directory deeper than PATH_MAX: climb with ".."
    until the kernel can name an ancestor, finding each name on the way by
    its device and inode in the parent."""
    import stat as _stat

    if not _stat.S_ISDIR(os.fstat(fd).st_mode):
        raise OSError(errno.ENAMETOOLONG, "cannot locate a file this deep")
    names: list[str] = []
    opened: list[int] = []
    current = fd
    try:
        for _ in range(4096):
            info = os.fstat(current)
            parent = os.open("..", O_PATH_DIR, dir_fd=current)
            opened.append(parent)
            name = None
            listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent)
            try:
                with os.scandir(listing) as entries:
                    for entry in entries:
                        try:
                            found = os.stat(entry.name, dir_fd=parent, follow_symlinks=False)
                        except OSError:
                            continue
                        if (found.st_dev, found.st_ino) == (info.st_dev, info.st_ino):
                            name = entry.name
                            break
            finally:
                os.close(listing)
            if name is None:
                raise OSError(errno.ENOENT, "directory vanished while locating it")
            names.append(name)
            try:
                top = os.readlink(f"/proc/self/fd/{parent}")
            except OSError as err:
                if err.errno != errno.ENAMETOOLONG:
                    raise
                current = parent
                continue
            return top.rstrip("/") + "/" + "/".join(reversed(names))
        raise OSError(errno.ELOOP, "too deep")
    finally:
        for extra in opened:
            os.close(extra)


def join(parent: str, name: bytes) -> str:
    text = os.fsdecode(name).rstrip("/") or "."
    if text in (".", ".."):
        return posixpath.normpath(posixpath.join(parent, text))
    return parent.rstrip("/") + "/" + text


def is_symlink_at(parent: int, name: bytes) -> bytes | None:
    """The target of name in parent when it is a symlink, else None."""
    try:
        return os.readlink(name.rstrip(b"/"), dir_fd=parent)
    except OSError as err:
        if err.errno in (errno.EINVAL, errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def is_anonymous(where: str) -> bool:
    """Pipes, sockets and anon inodes: objects with no place in the tree."""
    return not where.startswith("/")


def is_deleted(where: str) -> bool:
    return where.endswith(" (deleted)")

