"""The shells peninsula hooks into, behind one interface: one module per shell
(bash.py, zsh.py, fish.py, direnv.py), its hook text beside it.

A shell module holds SHELL, a Shell: the hook file it ships and the line that
installs it; its docstring says how that hook re-execs the shell under the
supervisor and how it meets the shell's prompt. Imported on every interactive
shell start (`peninsula hook SHELL`): standard library only, and only the module
of the shell asked for.
"""

from __future__ import annotations

import importlib
import os
import sys

# Every shell with a hook, in the order `peninsula hook --help` names them.
NAMES = ("bash", "zsh", "fish", "direnv")
# The names in defaults.CACHE_ENV and socketdirs.SOCKET_ENV, for the hooks to keep before a project
# (a unit test holds them equal): importing defaults here would cost every
# shell start ~45 ms.
CACHE_NAMES = ("npm_config_cache PIP_CACHE_DIR UV_CACHE_DIR GOCACHE GOMODCACHE CARGO_HOME YARN_CACHE_FOLDER GRADLE_USER_HOME "
               "PNPM_HOME pnpm_config_store_dir pnpm_config_cache_dir pnpm_config_state_dir TMUX_TMPDIR SCREENDIR")
# The dynamic loader's variables that make a program load a library: a
# project may set them for its own commands, but direnv (whose output the
# shell evaluates) never runs with the project's values, and leaving a
# project puts back the values the shell had outside.
LOADER_NAMES = "LD_PRELOAD LD_AUDIT LD_LIBRARY_PATH"


class Shell:
    """One shell: the hook text it evaluates and where the user puts it."""

    __slots__ = ("name", "hook_file", "install")

    def __init__(self, name: str, hook_file: str, install: str) -> None:
        self.name = name
        self.hook_file = hook_file  # beside this package's modules
        self.install = install  # the hook line and the file it goes in, for `peninsula hook --help`

    def hook_text(self) -> str:
        # A plain read beside this file (importlib.resources costs ~7 ms of imports).
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), self.hook_file), encoding="utf-8") as handle:
            text = handle.read()
        text = text.replace("@PENINSULA@", peninsula_command()).replace("@CACHE_NAMES@", CACHE_NAMES)
        return text.replace("@LOADER_NAMES@", LOADER_NAMES)


def shell(name: str) -> Shell:
    """The Shell called NAME (one of NAMES); imports that shell's module only."""
    if name not in NAMES:
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}").SHELL


def hook_text(name: str) -> str:
    return shell(name).hook_text()


def _quote(word: str) -> str:
    # shlex (and the re module it loads) only when the word needs quoting:
    # the hook runs at every shell start.
    if word and all(c.isalnum() or c in "/._-+:@%" for c in word):
        return word
    import shlex

    return shlex.quote(word)


def peninsula_command() -> str:
    """How the hooks should call us: the installed script, else this Python."""
    script = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(script) == "peninsula" and os.access(script, os.X_OK):
        return _quote(script)
    return f"{_quote(sys.executable)} -m peninsula"
