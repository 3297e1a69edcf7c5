"""The supervisor's own ptrace-gated /proc directories, as a target's walk meets them.

A lookup in /proc/PID/fdinfo needs ptrace read access to PID; one in
/proc/PID/fd or /proc/PID/map_files search permission on a directory owned
by PID's user (mode 0500), and in map_files, for a START-END name, a
capability; following an fd or mapping there needs ptrace access. The
kernel lets a process into its own thread group's entries whatever the
checks say, so the supervisor walking its own /proc/SUPERVISOR/... always
gets in. A confined target never has ptrace access to the supervisor
(Landlock scopes it to the target's own domain, nested in the
supervisor's). Were the supervisor's walk believed, a missing name beneath
them would answer ENOENT or ENOTDIR where the kernel answers EACCES, and
tell the target which fds the supervisor holds.
"""

from __future__ import annotations

import errno
import os
import re
import stat

from peninsula.kernel import libc

# (the tail only: the same procfs may be mounted elsewhere too; the device tells)
_GATED = re.compile(r"/(?P<pid>\d+)(?:/task/\d+)?/(?P<kind>fd|fdinfo|map_files)$")
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN, CAP_CHECKPOINT_RESTORE = 1, 2, 21, 40
_MAP_CAPS = (1 << CAP_SYS_ADMIN) | (1 << CAP_CHECKPOINT_RESTORE)
# The names the kernel parses as a mapping (no leading zero but "0"), measured.
_MAP_NAME = re.compile(rb"^(?:0|[1-9a-fA-F][0-9a-fA-F]*)-(?:0|[1-9a-fA-F][0-9a-fA-F]*)?$")
_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def _ours(pid: int) -> bool:
    """Is pid a thread of the supervisor's own process?"""
    return pid == os.getpid() or os.path.exists(f"/proc/{os.getpid()}/task/{pid}")


def _our_gated(directory: int, info: os.stat_result, proc_dev: int, location) -> str | None:
    """fd, fdinfo or map_files when directory is one of ours, else None."""
    if info.st_dev != proc_dev:
        return None
    gated = _GATED.search(location(directory))
    if gated is None or not _ours(int(gated.group("pid"))):
        return None
    return gated.group("kind")


def refuses(directory: int, name: bytes, proc_dev: int, creds, location) -> bool:
    """Would the lookup of name in directory be refused the target, the
    directory being one of the supervisor's own ptrace-gated ones?
    creds(): the target's fsuid, fsgid, groups and cap_effective (asked
    for only here); location(fd): where the kernel says fd is."""
    info = os.fstat(directory)
    kind = _our_gated(directory, info, proc_dev, location)
    if kind is None:
        return False
    if kind == "fdinfo" or not _may_search(info, creds()):
        return True
    # map_files: a well-formed START-END name is looked up only for a
    # caller with CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE or ptrace access
    # (never the target's to the supervisor); a malformed one finds nothing.
    return kind == "map_files" and _MAP_NAME.match(name) is not None and not creds().cap_effective & _MAP_CAPS


def _may_search(info: os.stat_result, creds) -> bool:
    """generic_permission(MAY_EXEC) on a directory for creds."""
    if creds.cap_effective & ((1 << CAP_DAC_OVERRIDE) | (1 << CAP_DAC_READ_SEARCH)):
        return True
    if info.st_uid == creds.fsuid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == creds.fsgid or info.st_gid in creds.groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def refused_on_the_way(base: int, path: bytes, resolve: int, proc_dev: int, creds, location, *,
                       into_last: bool) -> bool:
    """Does the target's walk of path from base (each directory in which
    a name is looked up, the last name's parent included, and the last
    name itself when into_last: it is followed) meet a lookup refuses()
    holds shut? Walked a prefix at a time and without symlinks:
    /proc/self and any symlink may mean the target's own entries, which
    our walk cannot tell from ours (resolve.Context.retarget), so a walk
    through one is left to our own answer. Only on error paths and for
    parents on procfs: where our own walk fails first, the kernel's does
    too, with the same errno."""
    absolute = path.startswith(b"/")
    names = [n for n in path.split(b"/") if n]
    opened: list[int] = []
    try:
        for count in range(len(names) + into_last):
            prefix = b"/" * absolute + b"/".join(names[:count]) if count or absolute else b"."
            try:
                here = libc.openat2(base, prefix or b"/", _O_PATH_DIR, 0,
                                    resolve | libc.RESOLVE_NO_MAGICLINKS | libc.RESOLVE_NO_SYMLINKS)
            except OSError as err:
                # One of our fds or mappings, followed on the way: the
                # kernel follows those magic links with ptrace access only.
                return err.errno == errno.ELOOP and bool(opened) and _our_gated(
                    opened[-1], os.fstat(opened[-1]), proc_dev, location) in ("fd", "map_files")
            opened.append(here)
            if count < len(names) and refuses(here, names[count], proc_dev, creds, location):
                return True
        return False
    finally:
        for fd in opened:
            os.close(fd)


def errno_in_their_tree(tid: int, path: bytes, flags: int) -> int | None:
    """The errno of the target's walk of the absolute path in its own
    mount namespace, when that is not ours and the walk fails there
    otherwise than ours did; else None. run --unshare-pid mounts the
    command's own /proc: "//proc/N/..." is its process N, not ours. Only
    for an answer that is an errno: nothing found there is used. A walk
    through /proc/self is left out: in their /proc it would name nothing
    of ours, and base() maps /proc/self itself."""
    if b"self" in path.split(b"/") or b"thread-self" in path.split(b"/"):
        return None
    try:
        if os.stat(f"/proc/{tid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino:
            return None
        root = os.open(f"/proc/{tid}/root", _O_PATH_DIR)
    except OSError:
        return None
    try:
        fd = libc.openat2(root, path.lstrip(b"/") or b".", flags | os.O_CLOEXEC, 0,
                          libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS)
    except OSError as err:
        return err.errno
    else:
        os.close(fd)
        return None
    finally:
        os.close(root)
