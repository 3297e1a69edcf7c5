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
            out.append(f"Landlock: ABI {self.abi}: writes limited to {len(self.write_roots)} roots")
            out.append(
                "Landlock scoping (signals, abstract unix sockets): "
                + ("enforced" if self.scoped else f"not available (needs ABI {SCOPING_ABI})")
            )
        return out


def abi_version() -> int:
    """The running kernel's Landlock ABI, 0 when Landlock is off or absent."""
    try:
        from landlockpy import _syscall

        return _syscall.abi_version()
    except OSError:
        return 0


def _rights():
    from landlockpy import AccessFS

    read = AccessFS.READ_FILE | AccessFS.READ_DIR | AccessFS.EXECUTE
    file_rights = AccessFS.READ_FILE | AccessFS.EXECUTE | AccessFS.WRITE_FILE | AccessFS.TRUNCATE | AccessFS.IOCTL_DEV
    return read, file_rights


def build_ruleset(write_roots: tuple[str, ...], *, scoped: bool):
    """A landlockpy Ruleset: read/execute everywhere, writes beneath roots."""
    from landlockpy import AccessFS, Ruleset, Scope, fs_for_abi

    abi = abi_version()
    if abi <= 0:
        raise BaselineError("Landlock is not available on this kernel")
    # Unix socket path connections are not ours to restrict (ABI 9).
    handled = fs_for_abi(abi) & ~AccessFS.RESOLVE_UNIX
    scopes = Scope.SIGNAL | Scope.ABSTRACT_UNIX_SOCKET if (scoped and abi >= SCOPING_ABI) else Scope.NONE
    ruleset = Ruleset(handled_fs=handled, scoped=scopes, best_effort=True)
    read, file_rights = _rights()
    ruleset.allow_path("/", read | AccessFS.IOCTL_DEV)
    for root in write_roots:
        if not os.path.exists(root):
            continue  # a root that does not exist yet cannot be written either
        ruleset.allow_path(root, handled if os.path.isdir(root) else file_rights & handled)
    return ruleset, abi


def report_for(write_roots: tuple[str, ...], *, scoped: bool) -> BaselineReport:
    abi = abi_version()
    missing = []
    if abi <= 0:
        missing.append("landlock")
    elif scoped and abi < SCOPING_ABI:
        missing.append("scoping")
    return BaselineReport(abi, write_roots, scoped and abi >= SCOPING_ABI, tuple(missing))


def restrict_self(write_roots: tuple[str, ...], *, scoped: bool) -> None:
    """Apply the baseline to the calling thread and its future children."""
    ruleset, _abi = build_ruleset(write_roots, scoped=scoped)
    try:
        ruleset.restrict(no_new_privs=True)
    finally:
        ruleset.close()
