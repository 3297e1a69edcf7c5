"""Does a process still run the program image we saw it run? (exec keeps the pid.)

exec replaces a process's memory (its mm) and keeps its pid and start time.
An open /proc/PID/mem stays bound to the mm it was opened on: once that mm is
gone, reads through it return 0 bytes. Reading alone proves nothing, though:
any process with ptrace access to the target (the user's own confined
commands have it) keeps a replaced mm alive, and readable through our fd,
for as long as one of its own reads of /proc/PID/mem lasts; overlapping
reads keep it alive for good (measured on this kernel). So the check writes
a fresh random token into the process's *current* memory (process_vm_writev
reaches the mm the pid runs now), reads it back through the held fd, and
puts the old bytes back: only the same mm shows the token.

The token goes into the last 8 bytes of the initial stack: the kernel leaves
them zero above the program's file name at exec and nothing refers to them.
"""

from __future__ import annotations

import ctypes
import errno
import os

from peninsula.kernel.libc import IoVec, _check, _libc, process_vm_readv

SLOT = 8

_process_vm_writev = _libc.process_vm_writev
_process_vm_writev.argtypes = [
    ctypes.c_int, ctypes.POINTER(IoVec), ctypes.c_ulong,
    ctypes.POINTER(IoVec), ctypes.c_ulong, ctypes.c_ulong,
]
_process_vm_writev.restype = ctypes.c_ssize_t


class Image:
    """The program image pid runs now, held by an fd on its memory."""

    def __init__(self, pid: int):
        self.pid = pid
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        self.slot: int | None = None  # found at the first check, when the stack is set up

    def close(self) -> None:
        os.close(self.fd)

    def unchanged(self) -> bool:
        """True only when pid's current mm is the one the fd holds. Call it
        while pid's thread that would act on the answer is stopped (in a
        trapped syscall): its memory is then the same before and after."""
        try:
            slot = self.slot if self.slot is not None else _stack_slot(self.pid)
            before = _read_current(self.pid, slot)
            token = before
            while token == before:
                token = os.urandom(SLOT)
            _write_current(self.pid, slot, token)
            try:
                seen = os.pread(self.fd, SLOT, slot)
            finally:
                _write_current(self.pid, slot, before)
        except OSError:
            return False  # gone, unmapped, or no longer ours to read: not the image we held
        self.slot = slot
        return seen == token


def _stack_slot(pid: int) -> int:
    with open(f"/proc/{pid}/maps", "rb") as maps:
        for line in maps:
            if line.rstrip().endswith(b"[stack]"):
                return int(line.split(b"-", 1)[1].split(b" ", 1)[0], 16) - SLOT
    raise OSError(errno.ENOENT, f"no stack in /proc/{pid}/maps")


def _read_current(pid: int, address: int) -> bytes:
    buf = ctypes.create_string_buffer(SLOT)
    if process_vm_readv(pid, IoVec(ctypes.addressof(buf), SLOT), IoVec(address, SLOT)) != SLOT:
        raise OSError(errno.EIO, "short read")
    return buf.raw


def _write_current(pid: int, address: int, data: bytes) -> None:
    buf = ctypes.create_string_buffer(data, SLOT)
    local, remote = IoVec(ctypes.addressof(buf), SLOT), IoVec(address, SLOT)
    if _check(_process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)) != SLOT:
        raise OSError(errno.EIO, "short write")
