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
# Of these, directories whose contents only are meant: the directory itself
# is the host's (chmod 1777 /dev/pts). Which terminal a process may write
# is the supervisor's question (handlers.devices.own_terminal): it needs facts.
DEVICE_DIRS: tuple[str, ...] = ("/dev/pts",)


@dataclass(frozen=True)
class StateAllowance:
    """A tool's state file (a history, viminfo): its contents may be
    written, and its name changed only the ways the tool itself does it.

    An unconfined program writes this file later, following whatever sits at
    its name: a confined process that could put a symlink, a hard link, a
    directory or a FIFO there (or at a temporary name the tool opens) would
    aim that later write anywhere. So, at the name and at each temporary
    name: open and create a regular file, write, truncate, unlink (vim
    unlinks .viminfo before renaming onto it); rename a temporary name onto
    the state name; nothing else. Every object that can reach these names is
    thus a regular file with one link, made there by an open: no check at
    rename time is needed (and none could be free of races).

    path:      the state file, absolute; with directory=True a directory of
               state files (nvim's swap and undo files), beneath which
               regular files and directories may be made, written, renamed
               and removed, and no symlink, hard link or special file made.
    temps:     names (fnmatch patterns, no "/") in path's directory that the
               tool writes and renames onto path.
    locks:     names in path's directory where the tool makes a lock
               symlink that it only reads back (zsh's .zsh_history.LOCK).
    reason:    why nothing later runs or trusts what is written there.
    dotlocks:  names in path's directory where the tool takes a lock the
               GnuPG way (dotlock.c): it creates a regular file at a
               DOTLOCK_TEMP name, writes its pid there, hard-links it to
               NAME+"x" (to learn whether links work) and to the lock name,
               and later unlinks both. A lock name or a DOTLOCK_TEMP name
               can only ever be a hard link of a DOTLOCK_TEMP file made
               there by an open (decide_link), never a symlink or special
               file, nor a rename target.
    """

    path: str
    temps: tuple[str, ...] = ()
    locks: tuple[str, ...] = ()
    directory: bool = False
    reason: str = ""
    dotlocks: tuple[str, ...] = ()

    def role(self, path: str) -> str | None:
        """"state", "temp", "lock", "inside" (beneath a directory
        allowance) or None when path is none of this allowance's names."""
        if path == self.path:
            return "state"
        if self.directory:
            return "inside" if path.startswith(self.path + "/") else None
        parent, _, name = path.rpartition("/")
        if (parent or "/") != (self.path.rpartition("/")[0] or "/"):
            return None
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.temps):
            return "temp"
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.locks):
            return "lock"
        if self.dotlocks:
            if name in self.dotlocks:
                return "dotlock"
            if DOTLOCK_TEMP_NAME.fullmatch(name):
                return "dotlock-temp"
        return None

    def prefixes(self) -> tuple[str, ...]:
        """Literal prefixes of every name this allowance covers (the
        compiled hot path hands writes there to Python)."""
        parent = self.path.rpartition("/")[0]
        out = [self.path]
        for pattern in self.temps + self.locks + self.dotlocks + ((DOTLOCK_TEMP,) if self.dotlocks else ()):
            cut = min((pattern.find(c) for c in "*?[" if c in pattern), default=len(pattern))
            out.append(parent + "/" + pattern[:cut])
        return tuple(dict.fromkeys(out))


# GnuPG's dotlock temporary names: ".#lk0x" + the lock's address in hex +
# "." + host name + "." + pid (and the same + "x" for its link probe).
# DOTLOCK_TEMP (a glob) re-allows them in a protected directory and gives
# the hot path its prefix; DOTLOCK_TEMP_NAME decides a name: gpg's exact
# form (dotlock.c: "%s/.#lk%p.%s.%d", uname's node name), no control
# character, blank or "/" in it.
DOTLOCK_TEMP = ".#lk0x[0-9a-f]*.*.[0-9]*"
DOTLOCK_TEMP_NAME = re.compile(r"\.#lk0x[0-9a-f]+\.[!-.0-~]+\.[1-9][0-9]*x?")


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
    own_envrc: see below; None where no direnv project is confined.
    """

    writable: tuple[str, ...]
    protected: tuple[str, ...] = ()
    hardlinked_writes: bool = False
    # Tool state files: writable for their contents, see StateAllowance.
    state: tuple[StateAllowance, ...] = ()
    # The confined project's .envrc: direnv's allow and deny records of it
    # (and of it alone) may be written (direnvrecords.py).
    own_envrc: str | None = None
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

    @property
    def state(self) -> tuple["StateAllowance", ...]:
        """The name rules of both sides' state files (each only narrows)."""
        return tuple(dict.fromkeys(self.outer.state + self.inner.state))

    @property
    def own_envrc(self) -> str | None:
        """direnv's records of the .envrc both sides name, else none."""
        return self.outer.own_envrc if self.outer.own_envrc == self.inner.own_envrc else None


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
    a plain one protects, a "!" one re-allows. Under Both, either side's."""
    if isinstance(policy, Both):
        return protection_for(policy.outer, path, chain) or protection_for(policy.inner, path, chain)
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


def protected_beneath(policy: Policy, path: str) -> str | None:
    """A protecting pattern that lies strictly beneath path, or None.

    Renaming (or exchanging, or replacing by a symlink) a directory moves
    or redirects everything beneath it: a protection inside would then sit
    at a new, unprotected name. A glob could match beneath path when its
    literal prefix and path's subtree overlap ('*' matches '/' too);
    re-allowing patterns are not weighed, so the answer errs on refusing."""
    below = path.rstrip("/") + "/"
    for position, pattern in enumerate(policy.protected):
        if pattern.startswith("!"):
            continue
        if _is_glob(pattern):
            prefix = pattern[: min(pattern.find(c) for c in "*?[" if c in pattern)]
            if prefix.startswith(below) or below.startswith(prefix):
                return pattern
        elif pattern.startswith(below) and protection_for(policy, pattern) is not None:
            return pattern
    return None


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
        if is_beneath(path, dev) and path not in DEVICE_DIRS:
            return Decision(True, "terminal or null device", dev)
    chain = ancestors(path)
    root = writable_root(policy, path, chain)
    allowance = None
    if root is None:
        found = state_role(policy, path)
        if found is None:
            return Decision(False, "outside every writable root")
        allowance = found[0]
    pattern = protection_for(policy, path, chain)
    if pattern is not None:
        return Decision(False, f"protected by {pattern}", pattern)
    if allowance is not None:
        return Decision(True, f"state file {allowance.path}", allowance.path)
    return Decision(True, f"beneath writable root {root}", root)


def state_role(policy: Policy, path: str) -> tuple[StateAllowance, str] | None:
    """The state allowance that names path, and path's role in it."""
    for allowance in policy.state:
        role = allowance.role(path)
        if role is not None:
            return allowance, role
    return None


# What may be done to each kind of name of a state allowance, besides
# writing contents (see StateAllowance). "mknod" means a regular file.
_STATE_OPS = {
    "state": {"unlink", "mknod"},
    "temp": {"unlink", "mknod"},
    "lock": {"unlink", "symlink"},
    # links only between these two kinds of names: decide_link
    "dotlock": {"unlink", "link"},
    "dotlock-temp": {"unlink", "mknod", "link"},
    "inside": {"unlink", "mknod", "mkdir", "rmdir"},
}


def decide_name_change(policy: Policy, op: str, path: str) -> Decision | None:
    """May op (mkdir, mknod of a regular file, unlink, rmdir, symlink,
    link: path is the new name, or either end of a link) change the name
    path? None when no state allowance names path (decide_write decides
    alone); a refusal otherwise unless the op is one the tool needs. Asked
    even when path also lies beneath a writable root: the rule is about the
    unconfined tool that writes there later, wherever the name is."""
    found = state_role(policy, path)
    if found is None:
        return None
    allowance, role = found
    if role == "state" and allowance.directory:
        if op == "mkdir":
            return Decision(True, f"the directory of state files {allowance.path}", allowance.path)
    elif op in _STATE_OPS[role]:
        return Decision(True, f"state file {allowance.path}", allowance.path)
    if role in ("dotlock", "dotlock-temp"):
        return Decision(False, f"{path} is a lock file of {allowance.path}: only a regular file its tool makes, "
                               f"or a hard link of one", allowance.path)
    return Decision(False, f"{allowance.path} is a state file: only its contents may be written "
                           f"(an unconfined program writes it later, following whatever is at its name)", allowance.path)


def decide_link(policy: Policy, old: str, new: str) -> Decision | None:
    """The state-allowance rule for link(old, new) where either end is a
    dotlock name (StateAllowance.dotlocks): only a DOTLOCK_TEMP file linked
    to a dotlock name of the same allowance, so every object there is a
    regular file its tool's open made in that directory. None when neither
    end is a dotlock name (decide_name_change rules alone)."""
    found_old, found_new = state_role(policy, old), state_role(policy, new)
    kinds = ("dotlock", "dotlock-temp")
    if not any(found is not None and found[1] in kinds for found in (found_old, found_new)):
        return None
    if found_old is not None and found_new is not None and found_old[0] is found_new[0] and found_old[1] == "dotlock-temp":
        return Decision(True, f"lock file of {found_old[0].path}", found_old[0].path)
    refused = (found_new if found_new is not None and found_new[1] in kinds else found_old)[0].path
    return Decision(False, f"the lock files beside {refused} are made only as links of their tool's own lock file", refused)


def decide_rename(policy: Policy, old: str, new: str, exchange: bool) -> Decision | None:
    """The state-allowance rule for rename(old, new): a temporary name onto
    its state name, and renames beneath a directory allowance; no state
    name renamed away or replaced otherwise. None when neither is a state name."""
    found_old, found_new = state_role(policy, old), state_role(policy, new)
    if found_old is None and found_new is None:
        return None
    refused = (found_new or found_old)[0].path
    if not exchange and found_old is not None and found_new is not None and found_old[0] is found_new[0]:
        allowance = found_old[0]
        if (found_old[1], found_new[1]) in (("temp", "state"), ("inside", "inside")):
            return Decision(True, f"state file {allowance.path}", allowance.path)
    elif not exchange and found_new is None and found_old[1] == "inside":
        return Decision(True, f"out of the state directory {found_old[0].path}", found_old[0].path)
    return Decision(False, f"{refused} is a state file: only its contents may be written, and only its "
                           f"tool's temporary file renamed onto it", refused)


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
    if policy._glob_writable or policy.state:
        return False
    for pattern in policy.protected:
        text = pattern[1:] if pattern.startswith("!") else pattern
        if _is_glob(text):
            text = text[: min(text.find(c) for c in "*?[" if c in text)].rstrip("/") or "/"
        for root in policy.writable:
            if is_beneath(text, root) or is_beneath(root, text):
                return False
    return True


def decide_connect(*, allowed: str | None, datagram: bool, listener: str | None, inside: bool) -> Decision:
    """May a confined process reach a pathname unix socket? allowed: the
    allow-list entry of the socket's inode (None: not listed); listener:
    who listens on it (None when unknown), inside: whether that process is
    under the caller's confinement (or a stricter one). A listener outside
    would act for the caller with the user's full rights."""
    if allowed is not None:
        return Decision(True, f"allowed socket: {allowed}", "allow-list")
    if datagram:
        return Decision(False, "the receiver of a datagram socket cannot be identified, and it is not on the socket allow-list")
    if listener is not None and inside:
        return Decision(True, f"the listener {listener} is in the same confinement")
    who = listener or "an unknown process"
    return Decision(False, f"the listener {who} is not in this confinement and the socket is not on the allow-list")


# Services known by where their sockets live, for notices: each runs what
# a client asks, with the user's rights.
SOCKET_SERVICES: tuple[tuple[str, str], ...] = (
    ("/tmp/tmux-*/*", "tmux server"),
    ("/run/screen/*", "screen session"),
    ("/tmp/screen/*", "screen session"),
    ("/tmp/uscreens/*", "screen session"),
    ("/run/user/*/systemd/private", "systemd user manager"),
    ("/run/user/*/bus", "D-Bus session bus"),
    ("/tmp/dbus-*", "D-Bus session bus"),
    ("/run/dbus/system_bus_socket", "D-Bus system bus"),
    ("/run/docker.sock", "docker"),
    ("/var/run/docker.sock", "docker"),
    ("/run/user/*/docker.sock", "docker (rootless)"),
    ("/run/user/*/podman/podman.sock", "podman"),
    ("/tmp/.X11-unix/X*", "X11 display (keystrokes into any window)"),
    ("/run/user/*/wayland-*", "Wayland display"),
    ("/run/user/*/emacs/*", "emacs server"),
    ("/tmp/emacs*/*", "emacs server"),
    ("/run/user/*/nvim.*", "neovim server"),
    ("/tmp/nvim*/*", "neovim server"),
    ("/run/user/*/peninsula/*", "a peninsula session"),
    ("/tmp/peninsula-*/*", "a peninsula session"),
)


def socket_service(path: str) -> str | None:
    """The service a socket path belongs to, when it is a known one."""
    for pattern, name in SOCKET_SERVICES:
        if fnmatch.fnmatchcase(path, pattern):
            return name
    return None
