"""The policy engine: pure decisions, no syscalls.

Everything here works on strings and numbers the supervisor has already
resolved and measured, so it can be tested exhaustively without a kernel.
Paths given to the engine are absolute, normalised locations: the place the
kernel would really write, after every symlink was followed.
"""

from __future__ import annotations

import fnmatch
import re
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
    # Lookup tables derived from the fields above: every trapped write asks.
    _plain_writable: frozenset = field(init=False, repr=False, compare=False, hash=False)
    _glob_writable: tuple = field(init=False, repr=False, compare=False, hash=False)
    _plain_protect: dict = field(init=False, repr=False, compare=False, hash=False)
    _glob_protect: tuple = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        plain = frozenset(r for r in self.writable if not _is_glob(r))
        object.__setattr__(self, "_plain_writable", plain)
        object.__setattr__(self, "_glob_writable", tuple(r for r in self.writable if _is_glob(r)))
        plain, globs = {}, []
        for position, pattern in enumerate(self.protected):
            text = pattern[1:] if pattern.startswith("!") else pattern
            if _is_glob(text):
                cut = min(text.find(c) for c in "*?[" if c in text)
                globs.append((position, text[:cut], re.compile(fnmatch.translate(text)).match))
            else:
                plain[text] = position  # a later duplicate wins
        object.__setattr__(self, "_plain_protect", plain)
        object.__setattr__(self, "_glob_protect", tuple(reversed(globs)))

@dataclass(frozen=True)
class Both:
    """The intersection of two policies: a write is allowed only where both
    allow it. A `peninsula run` nested in a supervised session is judged by
    Both(the caller's policy, the run's own): never laxer than the caller,
    as strict as asked. Either side may itself be a Both (runs nest)."""

    outer: "Policy | Both"
    inner: "Policy | Both"

    @property
    def hardlinked_writes(self) -> bool:
        return self.outer.hardlinked_writes and self.inner.hardlinked_writes

    @property
    def writable(self) -> tuple[str, ...]:
        """For display (status): each root of one side that lies beneath a
        root of the other. decide_write is the authority, not this list."""
        a, b = self.outer.writable, self.inner.writable
        return tuple(dict.fromkeys([r for r in a if any(is_beneath(r, s) for s in b)]
                                   + [s for s in b if any(is_beneath(s, r) for r in a)]))

    @property
    def protected(self) -> tuple[str, ...]:
        """For display: the protections of both sides."""
        return tuple(dict.fromkeys(self.outer.protected + self.inner.protected))


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


def ancestors(path: str) -> list[str]:
    """path, its parent, ... up to "/" (path is absolute and normalised)."""
    out = [path]
    while path != "/":
        path = path.rsplit("/", 1)[0] or "/"
        out.append(path)
    return out


def protection_for(policy: Policy, path: str, chain: list[str] | None = None) -> str | None:
    """The protecting pattern that decides path, or None when it is unprotected.

    The last pattern that matches the path or one of its ancestors decides:
    a plain one protects, a "!" one re-allows."""
    best = -1
    index = policy._plain_protect
    for probe in chain or ancestors(path):
        hit = index.get(probe, -1)
        if hit > best:
            best = hit
    for position, prefix, match in policy._glob_protect:  # newest first
        if position <= best:
            break
        if any(probe.startswith(prefix) and match(probe) for probe in chain or ancestors(path)):
            best = position
            break
    if best < 0 or policy.protected[best].startswith("!"):
        return None
    return policy.protected[best]


def own_proc_entry(path: str, tgid: int) -> bool:
    """Writes to a process's own /proc entries (comm, oom_score_adj...) are its own business."""
    return is_beneath(path, f"/proc/{tgid}")


def decide_write(policy: Policy, path: str, *, tgid: int | None = None) -> Decision:
    """May a confined process create, modify or remove the object at path?"""
    if isinstance(policy, Both):
        outer = decide_write(policy.outer, path, tgid=tgid)
        if not outer.allow:
            return outer
        inner = decide_write(policy.inner, path, tgid=tgid)
        if not inner.allow:
            return Decision(False, f"{inner.reason} of this nested run", inner.rule)
        return inner
    if not path.startswith("/") or "\0" in path:
        return Decision(False, "not an absolute path")
    if tgid is not None and own_proc_entry(path, tgid):
        return Decision(True, "the process's own /proc entry")
    for dev in DEVICE_WRITES:
        if is_beneath(path, dev):
            return Decision(True, "terminal or null device", dev)
    chain = ancestors(path)
    root = writable_root(policy, path, chain)
    if root is None:
        return Decision(False, "outside every writable root")
    pattern = protection_for(policy, path, chain)
    if pattern is not None:
        return Decision(False, f"protected by {pattern}", pattern)
    return Decision(True, f"beneath writable root {root}", root)


def writable_root(policy: Policy, path: str, chain: list[str] | None = None) -> str | None:
    """The longest writable root containing path. A root with glob
    characters matches whole paths only (fish_history.* temp files).
    Under Both, the deeper of the two sides' roots, or None unless both have one."""
    if isinstance(policy, Both):
        outer, inner = writable_root(policy.outer, path, chain), writable_root(policy.inner, path, chain)
        if outer is None or inner is None:
            return None
        return outer if len(outer) >= len(inner) else inner
    best = None
    plain = policy._plain_writable
    for probe in chain or ancestors(path):  # deepest first: the first hit is the longest
        if probe in plain:
            best = probe
            break
    for root in policy._glob_writable:
        if fnmatch.fnmatchcase(path, root) and (best is None or len(root) > len(best)):
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


def landlock_expressible(policy: Policy) -> bool:
    """True when Landlock's "writable beneath these roots" says all this
    policy says about creating and removing names: no protected pattern
    lies inside, or around, a writable root, and no root is a glob."""
    if policy._glob_writable:
        return False
    for pattern in policy.protected:
        text = pattern[1:] if pattern.startswith("!") else pattern
        if _is_glob(text):
            text = text[: min(text.find(c) for c in "*?[" if c in text)].rstrip("/") or "/"
        for root in policy.writable:
            if is_beneath(text, root) or is_beneath(root, text):
                return False
    return True
