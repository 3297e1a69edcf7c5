"""The Landlock baseline: kernel-enforced, static, irrevocable.

Writes are allowed only beneath the baseline roots; reading and executing
stay allowed everywhere. From ABI 6 on, signal and abstract-unix-socket
scoping keep a sandboxed process from reaching anything outside its domain.

The syscalls are made directly (kernel/landlock_syscalls.py says why not
through landlockpy); errors are OSError with the kernel's errno.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SCOPING_ABI = 6
NETWORK_ABI = 4


class BaselineError(Exception):
    pass


@dataclass(frozen=True)
class BaselineReport:
    abi: int
    write_roots: tuple[str, ...]
    scoped: bool
    missing: tuple[str, ...]  # what this kernel could not enforce

    def lines(self) -> list[str]:
        out = []
        if self.abi <= 0:
            out.append("Landlock: not available: no kernel-enforced write baseline")
        else:
            out.append(f"Landlock: ABI {self.abi}: writes limited to the baseline roots by the kernel")
            out.append(
                "Landlock scoping (signals, abstract unix sockets): "
                + ("enforced" if self.scoped else f"not available (needs ABI {SCOPING_ABI})")
            )
        return out


def missing_features(*, scoped: bool = True) -> list[str]:
    """What this kernel's Landlock cannot enforce, each said for a user."""
    abi = abi_version()
    if abi <= 0:
        return ["Landlock is not available: no kernel-enforced write baseline (only the supervisor's checks)"]
    if scoped and abi < SCOPING_ABI:
        return [f"Landlock ABI {abi} has no scoping (needs ABI {SCOPING_ABI}): a confined process "
                "could signal processes outside the sandbox and reach their abstract unix sockets"]
    return []


def abi_version() -> int:
    """The running kernel's Landlock ABI, 0 when Landlock is off or absent."""
    from peninsula.kernel import landlock_syscalls

    try:
        return landlock_syscalls.abi_version()
    except OSError:
        return 0


def _rights():
    from peninsula.kernel.landlock_syscalls import EXECUTE, IOCTL_DEV, READ_DIR, READ_FILE, TRUNCATE, WRITE_FILE

    read = READ_FILE | READ_DIR | EXECUTE
    file_rights = READ_FILE | EXECUTE | WRITE_FILE | TRUNCATE | IOCTL_DEV
    return read, file_rights


@dataclass(frozen=True)
class NetRules:
    """TCP ports a sandboxed process may connect to and bind. When given,
    every other TCP connect and bind fails with EACCES (UDP, unix sockets
    and raw sockets are not covered by Landlock)."""

    connect: tuple[int, ...] = ()
    bind: tuple[int, ...] = ()


def build_ruleset(write_roots: tuple[str, ...], *, scoped: bool, net: NetRules | None = None):
    """A Landlock ruleset fd: read/execute everywhere, writes beneath roots;
    with net, TCP connect/bind only to the listed ports."""
    from peninsula.kernel import landlock_syscalls as ll

    abi = abi_version()
    if abi <= 0:
        raise BaselineError("Landlock is not available on this kernel")
    if net is not None and abi < NETWORK_ABI:
        raise BaselineError(
            f"TCP port rules need Landlock ABI {NETWORK_ABI}; this kernel has ABI {abi}, "
            "so --allow-connect/--allow-bind cannot be enforced"
        )
    # Unix socket path connections are not ours to restrict (ABI 9).
    handled = ll.fs_rights_for_abi(abi) & ~ll.RESOLVE_UNIX
    scopes = ll.SCOPE_SIGNAL | ll.SCOPE_ABSTRACT_UNIX_SOCKET if (scoped and abi >= SCOPING_ABI) else 0
    # Network rights are handled only when port rules are given: handling
    # them without rules would cut off all TCP.
    handled_net = ll.BIND_TCP | ll.CONNECT_TCP if net is not None else 0
    read, file_rights = _rights()
    rules = [("/", read | ll.IOCTL_DEV)]
    for root in write_roots:
        if not os.path.exists(root):
            continue  # a root that does not exist yet cannot be written either
        rules.append((root, handled if os.path.isdir(root) else file_rights))
    for port in (*net.connect, *net.bind) if net is not None else ():
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
    ruleset = ll.create_ruleset(handled, handled_net, scopes)
    try:
        for path, rights in rules:
            parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                ll.add_path_beneath(ruleset, parent, rights & handled)
            finally:
                os.close(parent)
        if net is not None:
            for port in net.connect:
                ll.add_net_port(ruleset, port, ll.CONNECT_TCP)
            for port in net.bind:
                ll.add_net_port(ruleset, port, ll.BIND_TCP)
    except BaseException:
        os.close(ruleset)
        raise
    return ruleset, abi


def report_for(write_roots: tuple[str, ...], *, scoped: bool) -> BaselineReport:
    abi = abi_version()
    missing = []
    if abi <= 0:
        missing.append("landlock")
    elif scoped and abi < SCOPING_ABI:
        missing.append("scoping")
    return BaselineReport(abi, write_roots, scoped and abi >= SCOPING_ABI, tuple(missing))


def restrict_self_if_available(write_roots: tuple[str, ...], *, scoped: bool, net=None) -> bool:
    """restrict_self, or False when this kernel has no Landlock at all
    (callers run without it only when the user chose best effort)."""
    if abi_version() <= 0:
        return False
    restrict_self(write_roots, scoped=scoped, net=net)
    return True


def restrict_self(write_roots: tuple[str, ...], *, scoped: bool, net: NetRules | None = None) -> None:
    """Apply the baseline to the calling thread and its future children."""
    from peninsula.kernel import landlock_syscalls

    ruleset, _abi = build_ruleset(write_roots, scoped=scoped, net=net)
    try:
        landlock_syscalls.restrict_self(ruleset)
    finally:
        os.close(ruleset)


def scope_signals_self() -> None:
    """Put the calling thread and its future children in a Landlock domain
    of their own that only scopes signals (ABI 6): they can no longer
    signal anything outside it, while processes outside may still signal
    in. Raises BaselineError below ABI 6, OSError if the kernel refuses."""
    from peninsula.kernel import landlock_syscalls as ll

    abi = abi_version()
    if abi < SCOPING_ABI:
        raise BaselineError(f"signal scoping needs Landlock ABI {SCOPING_ABI}; this kernel has "
                            + (f"ABI {abi}" if abi > 0 else "no Landlock"))
    ruleset = ll.create_ruleset(0, 0, ll.SCOPE_SIGNAL)
    try:
        ll.restrict_self(ruleset)
    finally:
        os.close(ruleset)
