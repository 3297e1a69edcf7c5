"""`peninsula shell`, `peninsula hook SHELL` and `peninsula prompt`."""

from __future__ import annotations

import os
import sys

from peninsula.cli.usage import fail
from peninsula.shell import shells
from peninsula.cli.registry import summary

PROMPT_FORMAT = "[peninsula: {name}] "


def register(sub) -> None:
    shell = sub.add_parser(
        "shell",
        help=summary("shell"),
        description="Start an interactive shell whose commands are confined to the project they "
        "are started in. With no command, starts $SHELL -i.",
    )
    shell.add_argument("--hook", metavar="SHELL", help=argparse_suppress())
    shell.add_argument("--argv0", metavar="NAME", help=argparse_suppress())
    shell.add_argument("--verbose", "-v", action="store_true", help="print supervisor diagnostics")
    shell.add_argument("argv", nargs="*", metavar="-- SHELL [ARGS...]")
    shell.set_defaults(handler=cmd_shell)

    hook = sub.add_parser(
        "hook",
        help=summary("hook"),
        description="Print the hook for SHELL. "
        + "; ".join(f"{name}: {shells.shell(name).install}" for name in shells.NAMES)
        + ". Put the line after direnv's own hook. PENINSULA_DISABLE=1 leaves a shell unsupervised.",
    )
    hook.add_argument("shell", choices=sorted(shells.NAMES))
    hook.set_defaults(handler=cmd_hook)

    prompt = sub.add_parser(
        "prompt",
        help=summary("prompt"),
        description="Print the session's state for a prompt. The hooks also set $PENINSULA_PROMPT "
        "without forking; use that in PS1 where you can.",
    )
    prompt.add_argument("--format", default=PROMPT_FORMAT, help="format with {name} and {root} (default: %(default)r)")
    prompt.set_defaults(handler=cmd_prompt)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def cmd_hook(args) -> int:
    sys.stdout.write(shells.hook_text(args.shell))
    return 0


def cmd_shell(args) -> int:
    from peninsula.shell.session import SessionError, start_shell

    argv = args.argv or [os.environ.get("SHELL") or "/bin/sh", "-i"]
    try:
        return start_shell(argv, verbose=args.verbose, argv0=args.argv0)
    except SessionError as err:
        if args.hook:
            return start_unsupervised(argv, str(err), args.argv0)
        return fail(str(err))


def start_unsupervised(argv: list[str], reason: str, argv0: str | None = None) -> int:
    """Called from a hook with `exec`: failing would close the terminal.
    Say why in one line and start the shell unsupervised."""
    reason = " ".join(reason.split())
    sys.stderr.write(f"peninsula: starting this shell UNSUPERVISED: {reason}\n")
    # The hooks leave a shell with this set alone, silently: it was said.
    os.environ["PENINSULA_UNSUPERVISED"] = reason[:200]
    if not argv:
        argv = [os.environ.get("SHELL") or "/bin/sh", "-i"]
    try:
        os.execvp(argv[0], [argv0 or argv[0], *argv[1:]])
    except OSError as err:
        sys.stderr.write(f"peninsula: cannot start {argv[0]}: {err.strerror}\n")
    return 127


def cmd_prompt(args) -> int:
    return print_prompt(args.format)


def print_prompt(template: str) -> int:
    from peninsula.shell.environ import ENV_SESSION_DIR

    if (os.environ.get("PENINSULA_DISABLE") or os.environ.get("PENINSULA_UNSUPERVISED")) and not os.environ.get("PENINSULA_SESSION"):
        print("[peninsula: OFF] ", end="")
        return 0
    session_dir = os.environ.get(ENV_SESSION_DIR)
    if not session_dir:
        return 0
    try:
        with open(os.path.join(session_dir, "state")) as handle:
            line = handle.readline().rstrip("\n")
    except OSError:
        return 0
    if not line:
        return 0
    name, _, root = line.partition("\t")
    print(template.format(name=name, root=root or name), end="")
    return 0
