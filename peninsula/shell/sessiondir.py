"""The session root and its sessions, made and found so that nothing
another user or a confined process planted there is trusted.

The root (session.session_root) is protected against every confined
process, of a shell session and of `peninsula run`. What remains:

- A root made before us by someone else (another user on /tmp, or a
  group/world-writable one): refused, never used.
- Between our checks and our writes, the name of the root could still be
  re-pointed by an unconfined program: the supervisor therefore writes its
  session files through a directory fd it opened when it made the session
  directory (openat/renameat, O_NOFOLLOW), never through the path.
- A socket at <root>/<id>/control.sock is used only when the process that
  listens on it is a process of this user with no more seccomp filters than
  the caller (SO_PEERPIDFD, then /proc/PID/status read while that pidfd says
  the process still lives): a confined process can neither shed its filter
  nor start a process without it, so it cannot pose as a supervisor to an
  unconfined caller. A caller inside the session (the sudo shim, a nested
  `peninsula run`, a command asking its own session) requires more: an
  ancestor of its own under strictly fewer filters, which a confined process
  of the same session (equal filters, no ancestor of the caller) is not.
"""

from __future__ import annotations

import os
import socket
import stat
import struct

SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)  # Linux 6.5


class UnsafeRoot(Exception):
    pass


def _check_dir(fd: int, path: str) -> None:
    info = os.fstat(fd)
    if info.st_uid != os.getuid() or info.st_mode & 0o022 or not stat.S_ISDIR(info.st_mode):
        raise UnsafeRoot(
            f"{path} is not a directory of yours that only you can write (owner uid {info.st_uid}, "
            f"mode {stat.S_IMODE(info.st_mode):o}): refusing to keep sessions there; remove it"
        )


def open_dir(path: str, *, create: bool) -> int:
    """An O_NOFOLLOW fd of directory path (made 0700 when missing and create),
    checked to be ours and writable by us only."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise UnsafeRoot(f"{path}: cannot open it as a directory ({err.strerror}): refusing to keep sessions there") from None
    try:
        _check_dir(fd, path)
    except UnsafeRoot:
        os.close(fd)
        raise
    return fd


def make_session_dir(root: str, name: str) -> int:
    """Make root/name (root checked first) and return its directory fd."""
    os.makedirs(os.path.dirname(root), exist_ok=True)  # the runtime dir's parent is the system's
    root_fd = open_dir(root, create=True)
    try:
        os.mkdir(name, 0o700, dir_fd=root_fd)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
    finally:
        os.close(root_fd)
    try:
        _check_dir(fd, os.path.join(root, name))
    except UnsafeRoot:
        os.close(fd)
        raise
    return fd


def write_file(dir_fd: int, name: str, text: str) -> None:
    """Write name in the directory dir_fd by a fresh temporary and a rename:
    the temporary is created O_EXCL|O_NOFOLLOW (a planted one is removed first)."""
    temp = name + ".new"
    try:
        os.unlink(temp, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _pidfd_pid(pidfd: int) -> int:
    with open(f"/proc/self/fdinfo/{pidfd}") as handle:
        for line in handle:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    return -1


def served_by_supervisor(conn: socket.socket, *, ours_only: bool = False) -> bool:
    """Is the listener at the other end of conn a process of this user that is
    not confined more than we are (a supervisor, or an unconfined program)?

    ours_only, for a caller inside a session (its filter on): the listener
    must be our own supervisor, an ancestor under strictly fewer filters. A
    confined process of the same session has as many filters as we do, and
    is no ancestor of ours."""
    from peninsula.kernel.target import descends_from, seccomp_filters

    try:
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
        pidfd = conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        return False
    try:
        pid = _pidfd_pid(pidfd)
        # Filters only stack: a confined listener has more than any
        # unconfined caller (none, or a container's), and cannot shed one.
        ours, theirs = seccomp_filters(os.getpid()), seccomp_filters(pid) if pid > 0 else None
        if uid != os.getuid() or ours is None or theirs is None or theirs > ours:
            return False
        if ours_only and not (theirs < ours and descends_from(os.getpid(), pid)):
            return False
        return _pidfd_pid(pidfd) == pid  # still alive: the status read was that process's
    except (OSError, ValueError):
        return False
    finally:
        os.close(pidfd)
