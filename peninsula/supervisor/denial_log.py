"""The denial log on disk: bounded by rotation, floods collapsed.

The log is two files, FILE (the live one) and FILE.1 (the one before).
When FILE reaches half the cap, its lines move to FILE.1 (replacing what
was there) and FILE starts empty, so the two together never hold much more
than LOG_CAP_BYTES. Both files are opened before the supervisor restricts
itself, and rotation works on those descriptors (copy, then truncate)
rather than by rename: a log outside the supervisor's own writable roots
(`--log /var/log/ci/denials.jsonl`) stays rotatable after Landlock.
Several supervisors may share one log: each append holds a shared flock
and a rotation the exclusive one, so no line is written between the copy
and the truncation.

A flood of identical refusals (same process, operation, path, reason and
errno) becomes one line for the first occurrence and, later, one summary
line that carries the last occurrence and how many it stands for:
"repeated": N. Summaries are written when the same refusal comes again
after REPEAT_FLUSH_SECONDS, when it is pushed out of the table of recent
refusals (DEDUP_LIMIT entries), and when the supervisor finishes. Every
distinct refusal is written at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time

LOG_CAP_BYTES = 8 << 20  # FILE and FILE.1 together (config: log_max_size)
LOG_CAP_MIN = 64 << 10  # room for summary lines of PATH_MAX paths, JSON-escaped
REPEAT_FLUSH_SECONDS = 60.0
# Refusals remembered for collapsing (each holds one path of at most
# PATH_MAX): bounded so that millions of distinct paths keep memory flat.
DEDUP_LIMIT = 1024


def rotated_path(path: str) -> str:
    return path + ".1"


class DenialLog:
    """Appends JSON lines to the log, rotating at half the cap."""

    def __init__(self, path: str, live_fd: int, old_fd: int | None, cap: int = LOG_CAP_BYTES):
        self.path = path
        self.live_fd = live_fd
        self.old_fd = old_fd
        self.segment = max(1, cap // 2)

    @classmethod
    def open(cls, path: str, cap: int = LOG_CAP_BYTES) -> "DenialLog | None":
        """Both files, opened for the supervisor; None (and a warning) when
        the live log cannot be opened."""
        # Read-write: a rotation reads the live file back (pread ignores O_APPEND).
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            live = os.open(path, flags, 0o600)
        except OSError as err:
            sys.stderr.write(f"peninsula: cannot open log {path}: {err.strerror}; denials are shown but not logged\n")
            return None
        try:
            # Read back for the copy; not O_APPEND (it is rewritten from 0).
            old = os.open(rotated_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            # Still bounded: a rotation then drops the older half.
            sys.stderr.write(f"peninsula: cannot open {rotated_path(path)}: {err.strerror}; "
                             "older denials are dropped when the log is rotated\n")
            old = None
        return cls(path, live, old, cap)

    def fds(self) -> tuple[int, ...]:
        return (self.live_fd,) if self.old_fd is None else (self.live_fd, self.old_fd)

    def close(self) -> None:
        for fd in self.fds():
            with contextlib.suppress(OSError):
                os.close(fd)

    def write(self, entry: dict) -> None:
        line = (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogateescape")
        with contextlib.suppress(OSError):
            fcntl.flock(self.live_fd, fcntl.LOCK_SH)
            try:
                os.write(self.live_fd, line)
                full = os.fstat(self.live_fd).st_size >= self.segment
            finally:
                fcntl.flock(self.live_fd, fcntl.LOCK_UN)
            if full:
                self._rotate()

    def _rotate(self) -> None:
        fcntl.flock(self.live_fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(self.live_fd).st_size
            if size < self.segment:
                return  # another supervisor rotated it meanwhile
            if self.old_fd is not None:
                os.ftruncate(self.old_fd, 0)
                offset = 0
                while offset < size:
                    chunk = os.pread(self.live_fd, min(1 << 20, size - offset), offset)
                    if not chunk:
                        break
                    os.pwrite(self.old_fd, chunk, offset)
                    offset += len(chunk)
            os.ftruncate(self.live_fd, 0)
        finally:
            fcntl.flock(self.live_fd, fcntl.LOCK_UN)


class Collapser:
    """Decides which refusals reach the log: every distinct one at once,
    repeats as counted summaries (see the module's docstring)."""

    def __init__(self, log: DenialLog, clock=time.monotonic):
        self.log = log
        self.clock = clock
        # key -> [repeats not yet written, their last entry, when the key's
        # last line was written]; insertion order is recency.
        self.recent: dict[tuple, list] = {}

    def add(self, entry: dict) -> None:
        key = (entry["pid"], entry["op"], entry["path"], entry["reason"], entry["errno"])
        now = self.clock()
        state = self.recent.pop(key, None)
        if state is None:
            self.log.write(entry)
            state = [0, None, now]
        else:
            state[0] += 1
            state[1] = entry
            if now - state[2] >= REPEAT_FLUSH_SECONDS:
                self._summary(state)
                state[2] = now
        self.recent[key] = state  # most recent last
        if len(self.recent) > DEDUP_LIMIT:
            oldest = next(iter(self.recent))
            self._summary(self.recent.pop(oldest))

    def _summary(self, state: list) -> None:
        if state[0]:
            self.log.write(dict(state[1], repeated=state[0]))
            state[0], state[1] = 0, None

    def finish(self) -> None:
        for state in self.recent.values():
            self._summary(state)
        self.recent.clear()


def read_lines(path: str) -> list[str]:
    """The log's lines, oldest first: FILE.1, then FILE."""
    lines: list[str] = []
    for name in (rotated_path(path), path):
        try:
            with open(name, "rb") as handle:
                lines += handle.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            continue
    return [line for line in lines if line.strip()]
