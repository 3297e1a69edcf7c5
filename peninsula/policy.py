"""The policy engine: pure decisions, no syscalls.

Everything here works on strings and numbers the supervisor has already
resolved and measured, so it can be tested exhaustively without a kernel.
Paths given to the engine are absolute, normalised locations: the place the
kernel would really write, after every symlink was followed.
"""

from __future__ import annotations

import fnmatch
import posixpath
from dataclasses import dataclass, field

# Devices that every confined process may open for writing: the terminal and
# the bit buckets. None of them stores anything a later process would run.
DEVICE_WRITES: tuple[str, ...] = (
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
)


@dataclass(frozen=True)
class Policy:
    """What a confined process may change.

    writable:  roots beneath which writes are allowed (absolute, canonical);
               an entry with glob characters allows exactly the paths it matches.
    protected: patterns beneath which writes are denied even inside a writable
               root. A pattern is an absolute path or an fnmatch glob; one
               starting with "!" re-allows what an earlier pattern protected
               (the last matching pattern wins, as in .gitignore).
    hardlinked_writes: allow opening for write a regular file that has more
               than one name. Off by default: the other names may lie outside
               the writable roots, and nothing tells where.
    """

    writable: tuple[str, ...]
    protected: tuple[str, ...] = ()
    hardlinked_writes: bool = False
    # Where each writable root or protection came from, for messages.
    origins: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Decision:
    allow: bool
    reason: str
    rule: str | None = None


def is_beneath(path: str, root: str) -> bool:
    """True when path is root or lies under it (string test on canonical paths)."""
    if root == "/":
        return path.startswith("/")
    return path == root or path.startswith(root + "/")


def _pattern_matches(pattern: str, path: str) -> bool:
    """A pattern protects a path when it matches the path or any ancestor of it."""
    if not _is_glob(pattern):
        return is_beneath(path, pattern)
    probe = path
    while True:
        if fnmatch.fnmatchcase(probe, pattern):
            return True
        parent = posixpath.dirname(probe)
        if parent == probe:
            return False
        probe = parent


def protection_for(policy: Policy, path: str) -> str | None:
    """The protecting pattern that decides path, or None when it is unprotected."""
    verdict: str | None = None
    for pattern in policy.protected:
        if pattern.startswith("!"):
            if verdict is not None and _pattern_matches(pattern[1:], path):
                verdict = None
        elif _pattern_matches(pattern, path):
            verdict = pattern
    return verdict


def own_proc_entry(path: str, tgid: int) -> bool:
    """Writes to a process's own /proc entries (comm, oom_score_adj...) are its own business."""
    return is_beneath(path, f"/proc/{tgid}")


def decide_write(policy: Policy, path: str, *, tgid: int | None = None) -> Decision:
    """May a confined process create, modify or remove the object at path?"""
    if not path.startswith("/") or "\0" in path:
        return Decision(False, "not an absolute path")
    if tgid is not None and own_proc_entry(path, tgid):
        return Decision(True, "the process's own /proc entry")
    for dev in DEVICE_WRITES:
        if is_beneath(path, dev):
            return Decision(True, "terminal or null device", dev)
    root = writable_root(policy, path)
    if root is None:
        return Decision(False, "outside every writable root")
    pattern = protection_for(policy, path)
    if pattern is not None:
        return Decision(False, f"protected by {pattern}", pattern)
    return Decision(True, f"beneath writable root {root}", root)


def writable_root(policy: Policy, path: str) -> str | None:
    """The longest writable root containing path. A root with glob
    characters matches whole paths only (fish_history.* temp files)."""
    best = None
    for root in policy.writable:
        if _is_glob(root):
            hit = fnmatch.fnmatchcase(path, root)
        else:
            hit = is_beneath(path, root)
        if hit and (best is None or len(root) > len(best)):
            best = root
    return best


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def decide_hardlinked_write(policy: Policy, nlink: int) -> Decision:
    """Writing a regular file with several names writes all of them."""
    if nlink <= 1 or policy.hardlinked_writes:
        return Decision(True, "single name")
    return Decision(
        False,
        f"the file has {nlink} hard links; the other names may be outside the sandbox",
        "hardlinked_writes",
    )


def decide_trace(caller_tgid: int, target_ancestry: list[int]) -> Decision:
    """ptrace and process_vm_writev reach only the caller's own descendants.

    target_ancestry is the target's chain of parent pids, nearest first,
    as read from /proc by the supervisor.
    """
    if caller_tgid in target_ancestry:
        return Decision(True, "target is a descendant of the caller")
    return Decision(False, "target is not a descendant of the caller")
