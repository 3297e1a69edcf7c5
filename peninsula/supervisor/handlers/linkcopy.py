"""A hard link of a file the process may not change, made as a copy.

`git clone` of a local path, pnpm's, uv's and ccache's hard-link modes and
`cp -al` link files from outside into the project. A second name inside
would be a way to change the outside file: its contents are guarded
(policy.decide_hardlinked_write), but chmod, chown, times and xattrs
through the new name change the one inode. So where the kernel would have
linked a regular file (names._link asks its checks first: EEXIST, EXDEV,
protected hard links, may_create), the new name gets a file of its own
with the same contents, permission bits and times, and the call returns 0.

What the supervisor trusts here: the pinned source (an O_PATH fd, so a
name swapped for a symlink after the pin changes nothing) and the pinned
parent of the new name. The handler runs as the target (fsuid, fsgid,
groups, and no capability the target lacks: request.acting), so the source
is reopened for reading with the target's rights: a copy never holds what
the target could not read itself, and the new file is the target's.
A copy of up to INLINE_MAX bytes is made in the request loop; a larger
one is finished in a thread of its own that answers the request, so the
loop serves the session's other requests meanwhile. That thread works only
on the two descriptors opened here with the target's rights.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading

from peninsula.supervisor.handlers.request import Deferred, Denied, refuse_privileged

FICLONE = 0x40049409
CHUNK = 1 << 30
# About a few milliseconds of copying here: larger copies go to a thread.
INLINE_MAX = 4 << 20
# The ways a reflink or an in-kernel copy says "not here": fall back.
_NOT_SUPPORTED = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS)

# No "outside" in it: the notice must not offer an allowance (hints.suggestible).
UNREADABLE = "a hard link of a file this process may not change is made as a copy, and it may not read the file"


def copy_in(req, source: int, refusal: Denied, new_parent: int, new_name: bytes, new_where: str) -> int:
    """Make new_name (in the pinned new_parent) a copy of the pinned regular
    file source. refusal is the source's refusal, whose errno answers a
    copy that cannot be made for want of read permission (the kernel would
    have linked: it is a genuine refusal)."""
    info = os.fstat(source)
    # A kernel link keeps set-user-ID and set-group-ID bits: the sandbox
    # never makes such a program (request.refuse_privileged).
    refuse_privileged(req, new_where, info.st_mode, False, "link")
    try:
        # O_NONBLOCK: a lease on the file answers EWOULDBLOCK instead of
        # holding the request loop until the lease is broken.
        src = req.keep(os.open(f"/proc/self/fd/{source}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK))
    except PermissionError:
        raise Denied(refusal.errno, refusal.path, UNREADABLE, "link") from None
    dst = req.keep(os.open(new_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                           dir_fd=new_parent))
    if info.st_size <= INLINE_MAX:
        _fill(src, dst, info, new_parent, new_name)
        return 0
    _fill_later(req, src, dst, info, new_parent, new_name)
    raise Deferred()


def _fill(src: int, dst: int, info: os.stat_result, parent: int, name: bytes) -> None:
    """The contents, then the permission bits and times (the writes set
    the modification time); nothing is left at the name on failure."""
    try:
        _copy_contents(src, dst)
        os.fchmod(dst, info.st_mode & 0o777)
        os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
    except BaseException:
        _remove_own(dst, parent, name)
        raise


def _fill_later(req, src: int, dst: int, info: os.stat_result, parent: int, name: bytes) -> None:
    """_fill in a thread that answers the request (0 or the copy's errno).
    It holds duplicates of the request's descriptors, which close with the
    request, and starts with the handler's identity (a new thread inherits
    its creator's credentials: the target's, under request.acting). The
    target waits killable only (WAIT_KILLABLE_RECV), so no signal restarts
    its call while the copy is under way."""
    from peninsula.kernel.seccomp import Listener

    listener = Listener(os.dup(req.sup.listener.fd))  # ours: the loop may close its own
    fds = (os.dup(src), os.dup(dst), os.dup(parent))
    req_id = req.id

    def run():
        try:
            _fill(fds[0], fds[1], info, fds[2], name)
            listener.reply(req_id, 0)
        except Exception as error:  # the target must get an answer, whatever went wrong
            with contextlib.suppress(OSError):
                listener.fail(req_id, getattr(error, "errno", None) or errno.EIO)
        finally:
            for fd in (*fds, listener.fd):
                with contextlib.suppress(OSError):
                    os.close(fd)

    threading.Thread(target=run, name="peninsula-linkcopy", daemon=True).start()


def _copy_contents(src: int, dst: int) -> None:
    try:
        fcntl.ioctl(dst, FICLONE, src)
        return
    except OSError as err:
        if err.errno not in _NOT_SUPPORTED:
            raise
    try:
        while os.copy_file_range(src, dst, CHUNK):
            pass
        return
    except OSError as err:
        if err.errno not in _NOT_SUPPORTED:
            raise
    # Both offsets moved together so far: sendfile goes on from there.
    while os.sendfile(dst, src, None, CHUNK):
        pass


def _remove_own(dst: int, parent: int, name: bytes) -> None:
    """A copy that failed half-way leaves nothing: its name is removed if
    it still names the file made here."""
    with contextlib.suppress(OSError):
        made, there = os.fstat(dst), os.stat(name, dir_fd=parent, follow_symlinks=False)
        if (made.st_dev, made.st_ino) == (there.st_dev, there.st_ino):
            os.unlink(name, dir_fd=parent)
