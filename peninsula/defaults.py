"""Shipped defaults: what a confined process may write, and what never.

Each protected entry is a way to run code later, outside the sandbox.
"""

from __future__ import annotations

import os

# Temporary places every confined process may write: they hold nothing that
# runs later on its own.
TEMP_ROOTS = ("/tmp", "/var/tmp", "/dev/shm")

# Home-relative paths that stay read-only even inside a writable root.
PROTECTED_IN_HOME = (
    # shell start-up files: run by every new shell
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile",
    ".zshrc", ".zshenv", ".zprofile", ".zlogin", ".zlogout", ".config/fish",
    ".inputrc", ".pam_environment", ".xprofile", ".xsessionrc", ".xinitrc",
    # credentials and keys
    ".ssh", ".gnupg", ".netrc", ".git-credentials",
    # things started by the desktop or systemd
    ".config/autostart", ".config/systemd", ".local/share/systemd",
    # git's global config and hooks run in every repository
    ".gitconfig", ".config/git",
    # peninsula's and direnv's own state: the sandbox's judges
    ".config/peninsula", ".local/state/peninsula", ".local/share/peninsula",
    ".cache/peninsula",  # the cached seccomp program
    ".config/direnv", ".local/share/direnv",
    # toolchains and user binaries: run later, outside the sandbox
    ".local/bin", ".rustup", ".cargo/bin", ".nvm", ".pyenv", ".sdkman", ".volta",
)


# Home-relative files that confined processes may write: each is written on
# every run of a common tool, and none is run or sourced later.
ALLOWED_IN_HOME = (
    # shell history, written by the shell itself (at exit inside a project
    # too): losing it is data loss
    ".bash_history", ".zsh_history", ".histfile",
    ".local/share/fish/fish_history*",  # fish writes a temp file, then renames
    # REPL and pager histories
    ".python_history", ".node_repl_history", ".lesshst", ".sqlite_history",
    ".psql_history", ".mysql_history", ".irb_history",
    # editor state: viminfo and neovim's swap/undo/shada
    ".viminfo", ".local/state/nvim",
)


def home() -> str:
    return os.path.realpath(os.path.expanduser("~"))


def runtime_dir() -> str | None:
    value = os.environ.get("XDG_RUNTIME_DIR")
    return value if value and os.path.isabs(value) and os.path.isdir(value) else None


def state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(home(), ".local", "state")
    return os.path.join(base, "peninsula")


def default_log() -> str:
    return os.path.join(state_dir(), "denials.jsonl")


def open_log(path: str, cap: int | None = None):
    """The denial log (a denial_log.DenialLog, cap bytes with its rotated
    part), opened for appending; None (and a warning) when it cannot be."""
    from .denial_log import LOG_CAP_BYTES, DenialLog

    return DenialLog.open(path, LOG_CAP_BYTES if cap is None else cap)


def temp_roots() -> tuple[str, ...]:
    roots = [r for r in TEMP_ROOTS if os.path.isdir(r)]
    runtime = runtime_dir()
    if runtime:
        roots.append(runtime)
    return tuple(roots)


def allowed_in_home() -> tuple[str, ...]:
    base = home()
    return tuple(os.path.join(base, rel) for rel in ALLOWED_IN_HOME)


def protected_paths() -> tuple[str, ...]:
    base = home()
    return tuple(os.path.join(base, rel) for rel in PROTECTED_IN_HOME)
