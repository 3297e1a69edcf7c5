"""Facts about a trapped process, read by the supervisor itself.

Memory is read with process_vm_readv, page by page so an unterminated string
at the end of a mapping is an error, not a crash. /proc facts are read fresh
for each request: pids are reused and credentials change.
"""

from __future__ import annotations

import time
import ctypes
import errno
import os
import re

from peninsula.kernel import libc

PATH_MAX = 4096
PAGE = 4096
XATTR_SIZE_MAX = 65536

_buf = ctypes.create_string_buffer(XATTR_SIZE_MAX)
_local = libc.IoVec(ctypes.addressof(_buf), 0)
_remote = libc.IoVec(0, 0)


def read_bytes(pid: int, addr: int, size: int) -> bytes:
    """Exactly size bytes of the target's memory, else OSError(EFAULT)."""
    if size == 0:
        return b""
    if addr == 0 or size > XATTR_SIZE_MAX:
        raise OSError(errno.EFAULT if addr == 0 else errno.E2BIG, "bad buffer")
    _local.iov_len = size
    _remote.iov_base, _remote.iov_len = addr, size
    try:
        got = libc.process_vm_readv(pid, _local, _remote)
    except OSError as err:
        raise OSError(errno.EFAULT if err.errno in (errno.EFAULT, errno.EIO) else err.errno, "cannot read target memory") from None
    if got != size:
        raise OSError(errno.EFAULT, "short read of target memory")
    return _buf.raw[:size]


def read_cstring(pid: int, addr: int, limit: int = PATH_MAX) -> bytes:
    """A NUL-terminated string of at most limit bytes (NUL included).

    Reads up to each page end, so an unmapped next page only matters when
    the string really runs into it.
    """
    if addr == 0:
        raise OSError(errno.EFAULT, "NULL path")
    out = b""
    while len(out) < limit:
        chunk = min(PAGE - (addr % PAGE), limit - len(out))
        _local.iov_len = chunk
        _remote.iov_base, _remote.iov_len = addr, chunk
        try:
            got = libc.process_vm_readv(pid, _local, _remote)
        except OSError as err:
            raise OSError(errno.EFAULT if err.errno in (errno.EFAULT, errno.EIO) else err.errno, "cannot read path") from None
        if got <= 0:
            raise OSError(errno.EFAULT, "cannot read path")
        data = _buf.raw[:got]
        nul = data.find(b"\0")
        if nul >= 0:
            return out + data[:nul]
        out += data
        addr += got
    raise OSError(errno.ENAMETOOLONG, "path too long")


_STATUS_FIELDS = re.compile(rb"^(Tgid|PPid|Umask|Uid|Gid|Groups|FDSize|CapEff):[ \t]*(.*?)[ \t]*$", re.M)


class Status:
    """The parts of /proc/TID/status a decision needs."""

    __slots__ = ("tgid", "ppid", "umask", "fsuid", "fsgid", "groups", "fdsize", "cap_effective")

    def __init__(self, tid: int):
        try:
            fd = os.open(f"/proc/{tid}/status", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise OSError(errno.ESRCH, "process vanished") from None
        try:
            text = os.read(fd, 8192)
        finally:
            os.close(fd)
        # Only the lines we use: this runs for many requests.
        fields = dict(_STATUS_FIELDS.findall(text))
        self.tgid = int(fields[b"Tgid"])
        self.ppid = int(fields[b"PPid"])
        self.umask = int(fields.get(b"Umask", b"0022"), 8)
        self.fsuid = int(fields[b"Uid"].split()[3])
        self.fsgid = int(fields[b"Gid"].split()[3])
        self.groups = tuple(sorted(int(g) for g in fields.get(b"Groups", b"").split()))
        self.fdsize = int(fields.get(b"FDSize", b"0"))  # the fd table's size now
        self.cap_effective = int(fields[b"CapEff"], 16)


def parent_of(pid: int) -> int:
    """The parent pid from /proc/PID/stat (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return 0
    # comm may hold spaces and parentheses: fields follow the last ')'.
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def children(tgid: int) -> list[int]:
    """The children of every thread of process tgid (each thread's
    /proc/TGID/task/TID/children), [] when it is gone. A process that made
    itself non-dumpable (ssh-agent, gpg-agent) keeps those lists from
    another user's and from a plain user's reader: then every process's
    stat (readable to all) is read for its parent instead."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{tgid}/task")
        for tid in threads:
            found += [int(pid) for pid in _read_all(f"/proc/{tgid}/task/{tid}/children").split()]
    except FileNotFoundError:
        pass  # gone, or one thread gone: what was read stands
    except OSError:
        return [pid for pid, fields in proc_stats() if int(fields[1]) == tgid]
    return found


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every process below pid, from one read of
    every process's stat."""
    below: dict[int, list[tuple[int, int]]] = {}
    for child, fields in proc_stats():
        below.setdefault(int(fields[1]), []).append((child, int(fields[19])))
    found, todo = [], [pid]
    while todo:
        for key in below.get(todo.pop(), ()):
            found.append(key)
            todo.append(key[0])
    return found


def ancestry(pid: int, limit: int = 4096) -> list[int]:
    """Parent chain of pid, nearest first, ending at 1 or 0."""
    chain = []
    while pid > 1 and len(chain) < limit:
        pid = parent_of(pid)
        chain.append(pid)
    return chain


def start_time(pid: int) -> int:
    """Start time in clock ticks since boot (/proc/PID/stat field 22)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        stat = handle.read()
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def tty_nr(tid: int) -> int:
    """The controlling terminal's device number (field 7), 0 when none."""
    with open(f"/proc/{tid}/stat", "rb") as handle:
        stat = handle.read()
    return int(stat[stat.rindex(b")") + 2 :].split()[4])


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as handle:
            return handle.read().strip().decode("utf-8", "replace")
    except OSError:
        return "?"


def pidfd_target(tid: int, pidfd: int) -> int:
    """The pid a target's pidfd refers to (-1 when that process is gone)."""
    try:
        with open(f"/proc/{tid}/fdinfo/{pidfd}", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    raise OSError(errno.EBADF, "not a pidfd")


def _read_all(path: str) -> bytes:
    """A /proc file to its end (a seq_file gives a page per read)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_proc(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 8192)
    finally:
        os.close(fd)


def filtered(pid: int) -> bool:
    """Whether pid runs under a seccomp filter (a run's command and all it
    starts do; the supervisor and the namespace holder do not)."""
    return (seccomp_filters(pid) or 0) > 0


def descends_from(pid: int, ancestor: int, limit: int = 4096) -> bool:
    """Whether ancestor is on pid's chain of parents (pid itself excluded)."""
    for _ in range(limit):
        try:
            stat = _read_proc(f"/proc/{pid}/stat")
        except OSError:
            return False
        pid = int(stat[stat.rindex(b")") + 2 :].split(None, 2)[1])
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
    return False


def proc_stats():
    """(pid, fields of /proc/PID/stat after the command name) of every
    process, skipping those gone meanwhile. fields[0] is the state (field 3)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = _read_proc(f"/proc/{name}/stat")
        except OSError:
            continue
        yield int(name), stat[stat.rindex(b")") + 2 :].split()


CLK_TCK = os.sysconf("SC_CLK_TCK")


def now_tick() -> int:
    """Clock ticks since boot, the unit of /proc/PID/stat's start time."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * CLK_TCK)


def last_pid() -> int | None:
    """The newest pid allocated in our pid namespace."""
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


def seccomp_filters(pid: int | str) -> int | None:
    """How many seccomp filters pid ("self" for this process) runs under;
    None when that cannot be read."""
    try:
        text = _read_proc(f"/proc/{pid}/status")
        at = text.find(b"\nSeccomp_filters:")
        return int(text[at + 17:text.index(b"\n", at + 1)]) if at >= 0 else None
    except (OSError, ValueError):
        return None
