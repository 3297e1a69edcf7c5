"""The `peninsula` command: a thin face over the library API.

Each subcommand lives in its own module (cmd_*.py) with a register(sub)
that adds its parser and sets its handler; this file only dispatches.
"""

from __future__ import annotations

import importlib
import sys

EXIT_USAGE = 125

# Subcommand modules, in the order `peninsula --help` lists them.
COMMANDS = ("cmd_run", "cmd_shell", "cmd_status", "cmd_log", "cmd_trust", "cmd_join", "cmd_profiles", "cmd_doctor")
# Which module registers each subcommand: a command line naming one imports
# only that module (start-up time is felt on every shell start).
MODULE_OF = {
    "run": "cmd_run", "shell": "cmd_shell", "hook": "cmd_shell", "prompt": "cmd_shell",
    "status": "cmd_status", "check": "cmd_status", "log": "cmd_log", "trust": "cmd_trust",
    "allow": "cmd_trust", "ps": "cmd_join", "exec": "cmd_join", "profiles": "cmd_profiles",
    "doctor": "cmd_doctor",
}


def fail(message: str) -> int:
    sys.stderr.write(f"peninsula: {message}\n")
    return EXIT_USAGE


def build_parser(modules=COMMANDS):
    import argparse

    parser = argparse.ArgumentParser(prog="peninsula", description="A transparent write sandbox for your shell and commands.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(f"peninsula.{name}").register(sub)
    return parser


def _modules_for(argv: list[str]) -> tuple[str, ...]:
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in MODULE_OF and "-h" not in argv[: argv.index(first)] and "--help" not in argv[: argv.index(first)]:
        return (MODULE_OF[first],)
    if first is None and argv == ["--version"]:
        return ()
    return COMMANDS


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "hook":
        # Every interactive shell start runs `peninsula hook SHELL`, twice
        # (before and after the re-exec): answered without argparse.
        from .cmd_shell import HOOK_FILES, hook_text

        if argv[1] in HOOK_FILES:
            sys.stdout.write(hook_text(argv[1]))
            return 0
    parser = build_parser(_modules_for(argv))
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"peninsula {__version__}")
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return handler(args)
