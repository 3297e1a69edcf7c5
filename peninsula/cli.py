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


def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse, but a bad command line exits 125 (README's "bad option")
        with the usage of the subcommand it was meant for."""

        def error(self, message):
            self.print_usage(sys.stderr)
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    return Parser


def build_parser(modules=COMMANDS):
    parser = _parser_class()(prog="peninsula", description="A transparent write sandbox for your shell and commands.")
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
    from_hook = argv[:1] == ["shell"] and "--hook" in argv[: argv.index("--") if "--" in argv else len(argv)]
    try:
        return _main(argv)
    except SystemExit as stop:
        if not from_hook or stop.code in (0, None):
            raise
        reason = f"bad command line from the hook (exit {stop.code})"
    except Exception as err:  # noqa: BLE001 - see below
        from .config import ConfigError

        if not from_hook:
            if isinstance(err, ConfigError):
                return fail(str(err))
            raise
        reason = str(err) if isinstance(err, ConfigError) else describe_exception(err)
    # The hook ran `exec peninsula shell`: whatever went wrong, returning
    # would close the user's terminal. One line, then the shell, unsupervised.
    from .cmd_shell import start_unsupervised

    options = argv[: argv.index("--")] if "--" in argv else argv
    argv0 = options[options.index("--argv0") + 1] if "--argv0" in options[:-1] else None
    for option in options:  # the hooks' form: --argv0=-bash (a separate "-bash" reads as an option)
        if option.startswith("--argv0="):
            argv0 = option.removeprefix("--argv0=")
    return start_unsupervised(argv[len(options) + 1:], reason, argv0)


def describe_exception(err: BaseException) -> str:
    """One line: what went wrong and where (the innermost frame)."""
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"internal error: {type(err).__name__}: {err}{where}"


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "hook":
        # Every interactive shell start runs `peninsula hook SHELL`, twice
        # (before and after the re-exec): answered without argparse.
        from .cmd_shell import HOOK_FILES, hook_text

        if argv[1] in HOOK_FILES:
            sys.stdout.write(hook_text(argv[1]))
            return 0
    parser = build_parser(_modules_for(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Blame the subcommand's own usage, not the top level's.
        chosen = getattr(args, "command", None)
        actions = [a for a in parser._actions if a.dest == "command"]
        owner = actions[0].choices.get(chosen, parser) if actions and chosen else parser
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.version:
        from . import __version__

        print(f"peninsula {__version__}")
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return handler(args)
