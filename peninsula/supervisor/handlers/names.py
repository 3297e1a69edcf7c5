"""Calls that make, remove or move a name: mkdir, mknod, unlink, rmdir, rename, link, symlink.
"""

from __future__ import annotations

import errno
import os
import stat
from peninsula.supervisor.handlers import kernelorder
from peninsula.kernel import libc
from peninsula.policy import engine as policy
from peninsula.kernel.resolve import is_deleted
from peninsula.supervisor.handlers.request import Denied, RENAME_EXCHANGE, S_IFMT, signed_int
from peninsula.supervisor.handlers.request import refuse_privileged


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
    refuse_privileged(req, where, perms, False, "mknod")
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
    flags = signed_int(req.args[2])
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
               "(a copy works)")

# A hard link of a regular file from a place the process may not change
# into one it may: answered EXDEV, as between two file systems (what a
# bind mount of the project, bubblewrap's, answers too); logged, and
# noticed only for a protected source (~/.bashrc, ~/.ssh/...: no tool
# clones those), since the tools that do this copy on EXDEV by design.
# A second name inside would be a way to change the
# file: not only through the confined process (whose writes, chmod, chown,
# times and xattrs of a file with several names are refused) but through
# any unconfined program that later writes that name in place (`cat >
# generated.sh`). Tools that link where they can (git clone of a local
# path, pnpm, uv, ccache) copy on EXDEV; a copy made for them would not
# do: git checks that the new name is the same inode, and dies if not.
CROSS_BOUNDARY = errno.EXDEV
CROSS_BOUNDARY_REASON = ("a hard link into the sandbox of a file it may not change: answered EXDEV, "
                         "as between two file systems (copy it instead)")


def _check_link_source(req, where: str, source: int, kernel) -> Denied | None:
    """The link's source must be writable too (invariant 3). The refusal
    of a regular file, where the kernel would have linked it, is returned
    (the new name decides what is answered: _check_new_name); None when
    the source is writable. Refused otherwise; for lying outside the
    writable roots, the notice says why, not how to make the other place
    writable."""
    try:
        req.check(where, "link", kernel=kernel)
    except Denied as denied:
        refusal = denied
        if denied.reason == "outside every writable root":
            refusal = Denied(denied.errno, where, LINK_SOURCE, "link")
        if not is_deleted(where) and stat.S_ISREG(os.fstat(source).st_mode):
            return refusal
        raise refusal from None
    return None


def _check_new_name(req, refused: Denied | None, where: str, kernel) -> None:
    """The new name must be writable. When the source was refused, the
    source's refusal stands if the new name is refused too, as for any
    link (the kernel's answer for a source it refuses comes first), and
    EXDEV answers it otherwise (CROSS_BOUNDARY)."""
    try:
        req.check(where, "link", kernel=kernel)
    except Denied:
        if refused is None:
            raise
        raise refused from None
    if refused is not None:
        outside = refused.reason == LINK_SOURCE  # else a protection refused it
        raise Denied(CROSS_BOUNDARY, refused.path, CROSS_BOUNDARY_REASON if outside else refused.reason, "link",
                     noticed=not outside)


def _link(req, olddir, oldpath, newdir, newpath, flags):
    if flags & ~(libc.AT_SYMLINK_FOLLOW | libc.AT_EMPTY_PATH):
        raise OSError(errno.EINVAL, "bad flags")
    # The kernel looks the old name up first: its errors come first.
    if flags & libc.AT_EMPTY_PATH and oldpath == b"" or flags & libc.AT_SYMLINK_FOLLOW:
        pinned = req.pin(olddir, oldpath, follow=True, empty_ok=bool(flags & libc.AT_EMPTY_PATH))
        new_parent, new_name, new_where = req.entry(newdir, newpath)
        where = req.placed(pinned, "link")
        refused = None
        if not (is_deleted(where) and os.fstat(pinned).st_nlink == 0):
            # an O_TMPFILE file has no old place to check
            refused = _check_link_source(req, where, pinned,
                                         lambda: kernelorder.link(pinned, True, new_parent, new_name, req.status.fsuid))
            if refused is None:
                req.check_name(where, "link")
        _check_new_name(req, refused, new_where,
                        lambda: kernelorder.link(pinned, False, new_parent, new_name, req.status.fsuid))
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
    refused = _check_link_source(req, old_where, old,
                                 lambda: kernelorder.link(old, True, new_parent, new_name, req.status.fsuid))
    _check_new_name(req, refused, new_where, lambda: kernelorder.link(old, False, new_parent, new_name, req.status.fsuid))
    if refused is None:
        req.check_name(old_where, "link")
    req.check_name(new_where, "link")
    req.check_link(old_where, new_where)
    with req.as_target():
        libc.linkat(old_parent, old_name, new_parent, new_name, 0)
    return 0


def h_link(req):
    return _link(req, libc.AT_FDCWD, req.path(0), libc.AT_FDCWD, req.path(1), 0)


def h_linkat(req):
    return _link(req, req.dirfd(0), req.path(1), req.dirfd(2), req.path(3), signed_int(req.args[4]))


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
