"""The Landlock baseline: kernel-enforced, static, irrevocable.

Writes are allowed only beneath the baseline roots; reading and executing
stay allowed everywhere. From ABI 6 on, signal and abstract-unix-socket
scoping keep a sandboxed process from reaching anything outside its domain.

We use landlockpy rather than the `landlock` package: it covers scoping
(ABI 6) and network rules (ABI 4), and its errors carry the right errno.
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


def _landlockpy_syscalls():
    """landlockpy's syscall layer, given the C library directly: it would
    look it up with ctypes.util.find_library, which runs `ldconfig -p`
    (a fork and exec at every start), for a library already loaded."""
    import ctypes

    from landlockpy import _syscall

    if _syscall._libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long  # as landlockpy sets them
        libc.prctl.restype = ctypes.c_int
        _syscall._libc = libc
    return _syscall


def abi_version() -> int:
    """The running kernel's Landlock ABI, 0 when Landlock is off or absent."""
    try:
        return _landlockpy_syscalls().abi_version()
    except OSError:
        return 0


def _rights():
    from landlockpy import AccessFS

    read = AccessFS.READ_FILE | AccessFS.READ_DIR | AccessFS.EXECUTE
    file_rights = AccessFS.READ_FILE | AccessFS.EXECUTE | AccessFS.WRITE_FILE | AccessFS.TRUNCATE | AccessFS.IOCTL_DEV
    return read, file_rights


@dataclass(frozen=True)
class NetRules:
    """TCP ports a sandboxed process may connect to and bind. When given,
    every other TCP connect and bind fails with EACCES (UDP, unix sockets
    and raw sockets are not covered by Landlock)."""

    connect: tuple[int, ...] = ()
    bind: tuple[int, ...] = ()


def build_ruleset(write_roots: tuple[str, ...], *, scoped: bool, net: NetRules | None = None):
    """A landlockpy Ruleset: read/execute everywhere, writes beneath roots;
    with net, TCP connect/bind only to the listed ports."""
    from landlockpy import AccessFS, AccessNet, Ruleset, Scope, fs_for_abi

    _landlockpy_syscalls()

    abi = abi_version()
    if abi <= 0:
        raise BaselineError("Landlock is not available on this kernel")
    if net is not None and abi < NETWORK_ABI:
        raise BaselineError(
            f"TCP port rules need Landlock ABI {NETWORK_ABI}; this kernel has ABI {abi}, "
            "so --allow-connect/--allow-bind cannot be enforced"
        )
    # Unix socket path connections are not ours to restrict (ABI 9).
    handled = fs_for_abi(abi) & ~AccessFS.RESOLVE_UNIX
    scopes = Scope.SIGNAL | Scope.ABSTRACT_UNIX_SOCKET if (scoped and abi >= SCOPING_ABI) else Scope.NONE
    # landlockpy handles every network right when handled_net is left out:
    # say NONE explicitly, or all TCP would be cut off.
    handled_net = AccessNet.BIND_TCP | AccessNet.CONNECT_TCP if net is not None else AccessNet.NONE
    ruleset = Ruleset(handled_fs=handled, handled_net=handled_net, scoped=scopes, best_effort=True)
    read, file_rights = _rights()
    ruleset.allow_path("/", read | AccessFS.IOCTL_DEV)
    for root in write_roots:
        if not os.path.exists(root):
            continue  # a root that does not exist yet cannot be written either
        ruleset.allow_path(root, handled if os.path.isdir(root) else file_rights & handled)
    if net is not None:
        for port in net.connect:
            ruleset.allow_port(port, AccessNet.CONNECT_TCP)
        for port in net.bind:
            ruleset.allow_port(port, AccessNet.BIND_TCP)
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
    ruleset, _abi = build_ruleset(write_roots, scoped=scoped, net=net)
    try:
        ruleset.restrict(no_new_privs=True)
    finally:
        ruleset.close()


def scope_signals_self() -> None:
    """Put the calling thread and its future children in a Landlock domain
    of their own that only scopes signals (ABI 6): they can no longer
    signal anything outside it, while processes outside may still signal
    in. Raises BaselineError below ABI 6, OSError if the kernel refuses."""
    from landlockpy import AccessFS, AccessNet, Ruleset, Scope

    _landlockpy_syscalls()
    abi = abi_version()
    if abi < SCOPING_ABI:
        raise BaselineError(f"signal scoping needs Landlock ABI {SCOPING_ABI}; this kernel has "
                            + (f"ABI {abi}" if abi > 0 else "no Landlock"))
    ruleset = Ruleset(handled_fs=AccessFS.NONE, handled_net=AccessNet.NONE, scoped=Scope.SIGNAL, best_effort=False)
    try:
        ruleset.restrict(no_new_privs=True)
    finally:
        ruleset.close()
