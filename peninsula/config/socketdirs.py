"""Per-project socket directories for the terminal multiplexers.

Inside a project, tmux and screen are pointed (TMUX_TMPDIR, SCREENDIR) at a
directory of that project alone, so the servers they start there are the
project's own, and a confined process never needs to write where the user's
own servers listen (/tmp/tmux-UID, /run/screen/S-USER: protected, see
defaults.PROTECTED_SOCKETS). The directories live beneath one base:
$XDG_RUNTIME_DIR/peninsula-sockets (a 0700 directory of the user's own,
on tmpfs), or /tmp/peninsula-sockets-UID without a runtime dir; each is
<base>/<16 hex digits of the project root's SHA-256>: short, since a unix
socket's path must fit sun_path's 108 bytes (tmux's is
<dir>/tmux-UID/default, screen's <dir>/screen/PID.TTY.HOST).

Who can write there: no other user (the base and each directory are made
0700 and checked to be the user's own real directories before they are
named to a tool; one someone else made first is never used). The user's
unconfined processes can, as everywhere. The base is protected for every
confined process, and each project's policy re-allows its own directory
alone: a confined process of project B, or a `peninsula run` of another
project, cannot create, replace or rename anything in project A's.
"""

from __future__ import annotations

import os
import stat

from peninsula.config import defaults

# (variable the tool reads, subdirectory of the project's socket directory:
# "" for the directory itself). tmux makes tmux-UID beneath TMUX_TMPDIR,
# screen wants SCREENDIR itself, 0700 and the user's (it makes it if missing).
SOCKET_ENV = (
    ("TMUX_TMPDIR", ""),
    ("SCREENDIR", "screen"),
)


def sockets_base() -> str:
    runtime = defaults.runtime_dir()
    return os.path.join(runtime, "peninsula-sockets") if runtime else f"/tmp/peninsula-sockets-{os.getuid()}"


def project_sockets(root: str) -> str:
    """The socket directory of the project at root (absolute, canonical)."""
    return os.path.join(sockets_base(), defaults._sha256_hex(root.encode("utf-8", "surrogateescape"))[:16])


def _ours(path: str) -> bool:
    """path is a real directory (not a symlink) of this user that no one
    else can write."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o022


def make_project_sockets(root: str) -> str | None:
    """Make (0700) the socket directory of the project at root and its base;
    the directory, or None when either is missing or not safely ours."""
    path = project_sockets(root)
    for place in (os.path.dirname(path), path):
        try:
            os.mkdir(place, 0o700)
        except OSError:
            pass  # there already, or cannot be: judged just below
        if not _ours(place):
            return None
    return path


def socket_env(root: str) -> tuple[tuple[str, str], ...]:
    """The variables that point tmux and screen at the project's own
    directory (made if missing); none when it is not safely ours (then they
    use the user's own places, which are protected: refused, never hijacked)."""
    path = make_project_sockets(root)
    if path is None:
        return ()
    return tuple((name, os.path.join(path, sub) if sub else path) for name, sub in SOCKET_ENV)


def socket_protections(root: str | None) -> tuple[str, ...]:
    """Protected patterns for a policy confined to the project at root: the
    base, and the project's own directory re-allowed (None: no project's)."""
    base = sockets_base()
    return (base,) if root is None else (base, "!" + project_sockets(root))

