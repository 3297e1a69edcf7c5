"""Projects known by what they are: each root directory, held open.

A path string names whatever is at that path now; a confined process that
could rename a project root (or a directory above it) would change what
the supervisor's strings mean: move the project away and the shell, still
inside, looks as if it had left. So the shell session holds every project
root it recognised as an O_PATH fd, keyed by device and inode, and:

- judges the directory the shell is in by walking up from that directory
  itself ('..' from an fd of /proc/PID/cwd) until it meets a held root,
  never by the path /proc prints for it;
- refuses confined processes renaming, removing or replacing (rename over
  it, RENAME_EXCHANGE) a held root or any directory above one, and, while
  the shell is confined, the directory it is in or any above that
  (judge.guarded_directories, names._refuse_moving_a_root; the
  compiled hot path hands every directory rename and rmdir to Python).
"""

from __future__ import annotations

import os

O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
MAX_DEPTH = 4096  # PATH_MAX / 1: no real directory is deeper


def _key(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


class HeldRoots:
    def __init__(self):
        self._fds: dict[tuple[int, int], int] = {}

    def hold(self, path: str) -> None:
        """Hold the directory at path (a project root just recognised)."""
        try:
            fd = os.open(path, O_PATH_DIR)
        except OSError:
            return
        key = _key(os.fstat(fd))
        if key in self._fds:
            os.close(fd)
        else:
            self._fds[key] = fd

    def path_of(self, key: tuple[int, int]) -> str | None:
        """Where a held root is now (None when it was removed)."""
        try:
            where = os.readlink(f"/proc/self/fd/{self._fds[key]}")
        except OSError:
            return None
        return None if where.endswith(" (deleted)") or not where.startswith("/") else where

    def _upwards(self, fd: int):
        """(dev, ino) of the directory fd names, then of each directory above
        it, up to the root of the file system (fd is the caller's)."""
        here = os.fstat(fd)
        current = fd
        try:
            for _ in range(MAX_DEPTH):
                yield _key(here)
                try:
                    parent = os.open("..", O_PATH_DIR, dir_fd=current)
                except OSError:
                    return  # a removed directory has no '..' to walk
                if current != fd:
                    os.close(current)
                current = parent
                above = os.fstat(parent)
                if _key(above) == _key(here):
                    return  # '/' is its own parent
                here = above
        finally:
            if current != fd:
                os.close(current)

    def containing(self, fd: int) -> tuple[int, int] | None:
        """The innermost held root at or above the directory fd names."""
        for key in self._upwards(fd):
            if key in self._fds:
                return key
        return None

    def above(self, fd: int) -> set[tuple[int, int]]:
        """The directory fd names and every directory above it."""
        return set(self._upwards(fd))

    def guarded(self) -> set[tuple[int, int]]:
        """Every held root and every directory above one, as they are now."""
        out: set[tuple[int, int]] = set()
        for fd in list(self._fds.values()):
            for key in self._upwards(fd):
                if key in out:
                    break  # the rest of the way up is already there
                out.add(key)
        return out
