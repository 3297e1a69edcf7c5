"""What the kernel answers a call that peninsula refuses (invariant 9).

A location peninsula refuses must look, to a confined process, exactly
like a tree the kernel itself refuses: one owned by another user, with
directories it cannot write and files it does not own. So a refused call
first gets every error the kernel finds before its permission check
(existence, type, name length, loops, EXDEV, EBUSY, EINVAL... in the
kernel's order), and only then the permission error such a tree gives
(EACCES, or EPERM where the kernel asks for ownership: chmod, chown, times
set explicitly, trusted and security xattrs, protected hard links).

Each function here looks at the pinned objects only (fstat, lstat of a
name, statvfs, access as the target); nothing is changed. It answers
(errno, genuine): the errno to give when the location is refused, and
whether the kernel would have carried the call out here (only such a
refusal is logged and noticed: a call the kernel would fail anyway is not
a denial). Functions named *_error give an errno the kernel checks before
it looks at any path (0: none); they hold wherever the call goes.

The tests/engine/test_errno_parity.py twin trees check every answer
against the kernel's own.
"""

from __future__ import annotations

import errno
import os
import stat

from peninsula.kernel.resolve import O_PATH_DIR

O_TMPFILE = 0o20000000 | os.O_DIRECTORY
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
O_PATH_FDINFO = 0o10000000

Answer = tuple[int, bool]


# -- checks before any path ------------------------------------------------------


def open_flags_error(flags: int, mode: int = 0, strict: bool = False) -> int:
    """build_open_flags(): what it refuses before the path is read."""
    if strict and not flags & (os.O_CREAT | 0o20000000) and mode:
        return errno.EINVAL
    if strict and mode & ~0o7777:
        return errno.EINVAL
    if flags & os.O_PATH:
        return 0
    if flags & os.O_CREAT and flags & os.O_DIRECTORY:
        return errno.EINVAL
    if flags & 0o20000000:
        if not flags & os.O_DIRECTORY or flags & os.O_ACCMODE == os.O_RDONLY:
            return errno.EINVAL
    return 0


def rename_flags_error(flags: int) -> int:
    """(RENAME_WHITEOUT needs no capability since Linux 5.8.)"""
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT):
        return errno.EINVAL
    if flags & RENAME_EXCHANGE and flags & (RENAME_NOREPLACE | RENAME_WHITEOUT):
        return errno.EINVAL
    return 0


def mknod_mode_error(mode: int) -> int:
    """may_mknod(): a directory is EPERM, an unknown type EINVAL."""
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFDIR:
        return errno.EPERM
    if kind not in (0, stat.S_IFREG, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
        return errno.EINVAL
    return 0


def xattr_args_error(name: bytes | None, size: int, flags: int | None) -> int:
    """setxattr_copy(): flags, then the name, then the value's size."""
    if flags is not None and flags & ~(XATTR_CREATE | XATTR_REPLACE):
        return errno.EINVAL
    if name is None or not name:
        return errno.ERANGE
    if size > XATTR_SIZE_MAX:
        return errno.E2BIG
    return 0


def fd_is_path_only(tid: int, fd: int) -> bool:
    """Calls on an fd alone (fchmod, fchown, futimens, fsetxattr) see an
    O_PATH fd as no fd at all (EBADF)."""
    try:
        with open(f"/proc/{tid}/fdinfo/{fd}", "rb") as handle:
            for line in handle:
                if line.startswith(b"flags:"):
                    return bool(int(line.split()[1], 8) & O_PATH_FDINFO)
    except (OSError, ValueError):
        pass
    return False


# -- facts about pinned objects ---------------------------------------------------


def _lstat(parent: int, name: bytes) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno in (errno.ENOTDIR, errno.ENAMETOOLONG):
            return None
        raise


def _name_max(fd: int) -> int:
    try:
        return os.fstatvfs(fd).f_namemax or 255
    except OSError:
        return 255


def _read_only(fd: int) -> bool:
    try:
        return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}", "rb") as handle:
        for line in handle:
            if line.startswith(b"mnt_id:"):
                return int(line.split()[1])
    return -1


def _may(fd: int, mode: int) -> bool:
    """Whether the target (whose identity we hold) may access the object."""
    return os.access(f"/proc/self/fd/{fd}", mode, effective_ids=True)


def _may_in(parent: int) -> bool:
    return _may(parent, os.W_OK | os.X_OK)


def _owns(info: os.stat_result, fsuid: int) -> bool:
    return fsuid == 0 or info.st_uid == fsuid


def _sticky_blocks(parent: int, victim: os.stat_result, fsuid: int) -> bool:
    directory = os.fstat(parent)
    return bool(directory.st_mode & stat.S_ISVTX) and fsuid not in (0, directory.st_uid, victim.st_uid)


def _bare(name: bytes) -> bytes:
    return name.rstrip(b"/") or b"."


# -- directory entries ---------------------------------------------------------------


def create(parent: int, name: bytes, *, want_dir: bool) -> Answer:
    """mkdir, mknod, symlink, link's new name and a create by open:
    filename_create() then may_create()."""
    bare = _bare(name)
    if bare in (b".", b".."):
        return errno.EEXIST, False
    if len(bare) > _name_max(parent):
        return errno.ENAMETOOLONG, False
    if _lstat(parent, bare) is not None:
        return errno.EEXIST, False
    if name.endswith(b"/") and not want_dir:
        return errno.ENOENT, False
    if _read_only(parent):
        return errno.EROFS, False
    return errno.EACCES, _may_in(parent)


def mknod(parent: int, name: bytes, mode: int, dev: int, fsuid: int) -> Answer:
    """create(), then vfs_mknod()'s CAP_MKNOD for a device (0:0 is a whiteout)."""
    err, genuine = create(parent, name, want_dir=False)
    kind = stat.S_IFMT(mode)
    device = kind == stat.S_IFBLK or (kind == stat.S_IFCHR and dev != 0)
    return err, genuine and not (device and fsuid != 0)


def remove(parent: int, name: bytes, *, directory: bool, fsuid: int) -> Answer:
    """unlink and rmdir: do_unlinkat() / do_rmdir(), then may_delete(),
    whose permission check comes before its type checks."""
    bare = _bare(name)
    if bare == b"..":
        return (errno.ENOTEMPTY if directory else errno.EISDIR), False
    if bare == b".":
        return (errno.EINVAL if directory else errno.EISDIR), False
    if _read_only(parent):
        return errno.EROFS, False
    if len(bare) > _name_max(parent):
        return errno.ENAMETOOLONG, False
    victim = _lstat(parent, bare)
    if victim is None:
        return errno.ENOENT, False
    is_dir = stat.S_ISDIR(victim.st_mode)
    if not directory and name.endswith(b"/"):
        return (errno.EISDIR if is_dir else errno.ENOTDIR), False
    genuine = _may_in(parent) and not _sticky_blocks(parent, victim, fsuid) and is_dir == directory
    if genuine and directory:
        genuine = _empty(parent, bare)
    return errno.EACCES, genuine


def _empty(parent: int, name: bytes) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return True  # unreadable: say the kernel would remove it (noticed)
    try:
        with os.scandir(fd) as entries:
            return next(iter(entries), None) is None
    finally:
        os.close(fd)


def _ancestor_child(top: int, below: int) -> tuple[int, int] | None:
    """(dev, ino) of the child of top on the way up from below (below itself
    when it is top's child); None when top is not above below."""
    goal = os.fstat(top)
    goal = (goal.st_dev, goal.st_ino)
    current = os.dup(below)
    try:
        for _ in range(4096):
            here = os.fstat(current)
            up = os.open("..", O_PATH_DIR, dir_fd=current)
            there = os.fstat(up)
            os.close(current)
            current = up
            if (there.st_dev, there.st_ino) == goal:
                return here.st_dev, here.st_ino
            if (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino) or there.st_dev != here.st_dev:
                return None
        return None
    finally:
        os.close(current)


def rename(old_parent: int, old_name: bytes, new_parent: int, new_name: bytes, flags: int, fsuid: int) -> Answer:
    """do_renameat2() after both parents are found, then vfs_rename().
    (0, False) is the kernel's own success without a change: a name renamed
    onto a link of the same inode."""
    if _mount_id(old_parent) != _mount_id(new_parent):
        return errno.EXDEV, False
    old_bare, new_bare = _bare(old_name), _bare(new_name)
    if old_bare in (b".", b".."):
        return errno.EBUSY, False
    if new_bare in (b".", b".."):
        return (errno.EEXIST if flags & RENAME_NOREPLACE else errno.EBUSY), False
    if _read_only(old_parent):
        return errno.EROFS, False
    if len(old_bare) > _name_max(old_parent):
        return errno.ENAMETOOLONG, False
    old = _lstat(old_parent, old_bare)
    if old is None:
        return errno.ENOENT, False
    if len(new_bare) > _name_max(new_parent):
        return errno.ENAMETOOLONG, False
    new = _lstat(new_parent, new_bare)
    if flags & RENAME_NOREPLACE and new is not None:
        return errno.EEXIST, False
    if flags & RENAME_EXCHANGE:
        if new is None:
            return errno.ENOENT, False
        if not stat.S_ISDIR(new.st_mode) and new_name.endswith(b"/"):
            return errno.ENOTDIR, False
    old_is_dir = stat.S_ISDIR(old.st_mode)
    if not old_is_dir and (old_name.endswith(b"/") or (not flags & RENAME_EXCHANGE and new_name.endswith(b"/"))):
        return errno.ENOTDIR, False
    old_dir, new_dir = os.fstat(old_parent), os.fstat(new_parent)
    if (old_dir.st_dev, old_dir.st_ino) != (new_dir.st_dev, new_dir.st_ino):
        trap = _ancestor_child(old_parent, new_parent)
        if trap is not None and trap == (old.st_dev, old.st_ino):
            return errno.EINVAL, False
        if trap is None:
            trap = _ancestor_child(new_parent, old_parent)
            if trap is not None and new is not None and trap == (new.st_dev, new.st_ino):
                return (errno.EINVAL if flags & RENAME_EXCHANGE else errno.ENOTEMPTY), False
    if new is not None and (new.st_dev, new.st_ino) == (old.st_dev, old.st_ino):
        return 0, False
    genuine = _may_in(old_parent) and not _sticky_blocks(old_parent, old, fsuid)
    if genuine and new is None:
        genuine = _may_in(new_parent)
    elif genuine:
        new_is_dir = stat.S_ISDIR(new.st_mode)
        genuine = _may_in(new_parent) and not _sticky_blocks(new_parent, new, fsuid)
        if not flags & RENAME_EXCHANGE:
            genuine = genuine and new_is_dir == old_is_dir and not (new_is_dir and not _empty(new_parent, new_bare))
    return errno.EACCES, genuine


def link(old: int, old_refused: bool, new_parent: int, new_name: bytes, fsuid: int) -> Answer:
    """do_linkat() after the old name is found: the new name, EXDEV, then
    may_linkat() (protected hard links want the owner, or a regular file
    one may read and write), then may_create()."""
    answer = create(new_parent, new_name, want_dir=False)
    if answer[0] != errno.EACCES:
        return answer
    if _mount_id(old) != _mount_id(new_parent):
        return errno.EXDEV, False
    info = os.fstat(old)
    native = answer[1] and _safe_link_source(old, info, fsuid) and not stat.S_ISDIR(info.st_mode)
    if old_refused and _protected_hardlinks():
        return errno.EPERM, native  # a refused file is someone else's, and not writable
    return errno.EACCES, native


def _protected_hardlinks() -> bool:
    try:
        with open("/proc/sys/fs/protected_hardlinks", "rb") as handle:
            return handle.read().strip() != b"0"
    except OSError:
        return True


def _safe_link_source(fd: int, info: os.stat_result, fsuid: int) -> bool:
    if _owns(info, fsuid) or not _protected_hardlinks():
        return True
    if not stat.S_ISREG(info.st_mode) or info.st_mode & stat.S_ISUID:
        return False
    if info.st_mode & stat.S_ISGID and info.st_mode & stat.S_IXGRP:
        return False
    return _may(fd, os.R_OK | os.W_OK)


# -- objects ------------------------------------------------------------------------------


def open_existing(flags: int, info: os.stat_result) -> int:
    """do_open() and may_open() on an object that exists, up to the
    permission check: type errors the kernel gives wherever it is."""
    if flags & os.O_CREAT and stat.S_ISDIR(info.st_mode):
        return errno.EISDIR
    if flags & os.O_DIRECTORY and not stat.S_ISDIR(info.st_mode):
        return errno.ENOTDIR
    if stat.S_ISLNK(info.st_mode):
        return errno.ELOOP
    if stat.S_ISDIR(info.st_mode) and flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC):
        return errno.EISDIR
    return 0


def tmpfile(directory: int) -> Answer:
    """vfs_tmpfile(): write and search permission on the directory."""
    if _read_only(directory):
        return errno.EROFS, False
    return errno.EACCES, _may_in(directory)


def open_write(fd: int, flags: int, info: os.stat_result) -> Answer:
    if _read_only(fd) and flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC) and not stat.S_ISCHR(info.st_mode):
        return errno.EROFS, False
    want = os.R_OK | os.W_OK if flags & os.O_ACCMODE == os.O_RDWR else os.W_OK
    # a socket is not opened (ENXIO) even where it may be written
    return errno.EACCES, not stat.S_ISSOCK(info.st_mode) and _may(fd, want)


def truncate(fd: int, info: os.stat_result) -> Answer:
    if stat.S_ISDIR(info.st_mode):
        return errno.EISDIR, False
    if not stat.S_ISREG(info.st_mode):
        return errno.EINVAL, False
    if _read_only(fd):
        return errno.EROFS, False
    return errno.EACCES, _may(fd, os.W_OK)


def chmod(fd: int, fsuid: int) -> Answer:
    info = os.fstat(fd)
    if _read_only(fd):
        return errno.EROFS, False
    return errno.EPERM, _owns(info, fsuid)


def chown(fd: int, uid: int, gid: int, fsuid: int, groups: tuple[int, ...]) -> Answer:
    if _read_only(fd):
        return errno.EROFS, False
    info = os.fstat(fd)
    uid, gid = uid & 0xFFFFFFFF, gid & 0xFFFFFFFF
    keep = 0xFFFFFFFF
    if fsuid == 0 or (uid == keep and gid == keep):
        return errno.EPERM, True
    owner = info.st_uid == fsuid
    uid_ok = uid == keep or (owner and uid == info.st_uid)
    gid_ok = gid == keep or (owner and (gid == info.st_gid or gid in groups))
    return errno.EPERM, uid_ok and gid_ok


def times_error(times: tuple[tuple[int, int], tuple[int, int]] | None) -> int:
    """vfs_utimes(): nanoseconds out of range, after the path is found."""
    if times is None:
        return 0
    for _, nsec in times:
        if nsec not in (UTIME_NOW, UTIME_OMIT) and not 0 <= nsec <= 999_999_999:
            return errno.EINVAL
    return 0


def utimes(fd: int, times: tuple[tuple[int, int], tuple[int, int]] | None, fsuid: int) -> Answer:
    """times None (or both UTIME_NOW) asks for write access or ownership
    (EACCES), explicit times for ownership (EPERM)."""
    if _read_only(fd):
        return errno.EROFS, False
    info = os.fstat(fd)
    if times is None or all(nsec == UTIME_NOW for _, nsec in times):
        writable = stat.S_ISLNK(info.st_mode) or _may(fd, os.W_OK)
        return errno.EACCES, _owns(info, fsuid) or writable
    return errno.EPERM, _owns(info, fsuid)


def xattr(fd: int, name: bytes, removing: bool, flags: int, fsuid: int) -> Answer:
    """xattr_permission(), then the security module's and the file
    system's checks, for a set (removing False) or a removal."""
    info = os.fstat(fd)
    if _read_only(fd):
        return errno.EROFS, False
    capable = fsuid == 0
    if name.startswith(b"trusted."):
        return errno.EPERM, capable
    if name.startswith((b"security.", b"system.")):
        return errno.EPERM, capable
    is_reg_or_dir = stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)
    if name.startswith(b"user."):
        if not is_reg_or_dir:
            return errno.EPERM, False
        if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX:
            return errno.EPERM, _owns(info, fsuid)
        return errno.EACCES, _may(fd, os.W_OK) and _xattr_would_apply(fd, name, removing, flags)
    # No handler takes this prefix: EOPNOTSUPP once the inode may be
    # written, which a symlink's 0777 always may.
    if stat.S_ISLNK(info.st_mode):
        return errno.EOPNOTSUPP, False
    return errno.EACCES, False


def _xattr_would_apply(fd: int, name: bytes, removing: bool, flags: int) -> bool:
    try:
        present = name in (n.encode("utf-8", "surrogateescape") for n in os.listxattr(f"/proc/self/fd/{fd}"))
    except OSError:
        return True
    if removing:
        return present
    return not (flags & XATTR_CREATE and present) and not (flags & XATTR_REPLACE and not present)
