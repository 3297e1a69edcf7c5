"""The `peninsula` command: a thin face over the library API.

Each subcommand lives in its own module (peninsula/cli/*.py) with a register(sub)
that adds its parser and sets its handler; registry.py says which module holds
which command; this file only dispatches.
"""

from __future__ import annotations

import importlib
import sys
from peninsula.cli.registry import COMMANDS, MODULE_OF, REGISTRY
from peninsula.cli.usage import EXIT_USAGE, fail


def _parser_class():
    import argparse

    class Parser(argparse.ArgumentParser):
        """argparse, but a bad command line exits 125 (README's "bad option")
        with the usage of the subcommand it was meant for."""

        def error(self, message):
            self.print_usage(sys.stderr)
            self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    return Parser


def _top_parser():
    parser = _parser_class()(prog="peninsula", description="A transparent write sandbox for your shell and commands.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser, parser.add_subparsers(dest="command", metavar="COMMAND")


def build_parser(modules=COMMANDS):
    parser, sub = _top_parser()
    for name in modules:
        importlib.import_module(f"peninsula.cli.{name}").register(sub)
    return parser


def summary_parser():
    """The top level as build_parser() makes it, from the registry alone: for
    a command line that names no command (--help, none, a wrong one), whose
    parse never reaches a command's own options."""
    parser, sub = _top_parser()
    for name, (_, summary) in REGISTRY.items():
        sub.add_parser(name, help=summary)
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
        from peninsula.config.options import ConfigError
        from peninsula.shell.session import describe_exception

        if not from_hook:
            if isinstance(err, ConfigError):
                return fail(str(err))
            raise
        reason = str(err) if isinstance(err, ConfigError) else describe_exception(err)
    # The hook ran `exec peninsula shell`: whatever went wrong, returning
    # would close the user's terminal. One line, then the shell, unsupervised.
    from peninsula.cli.shell import start_unsupervised

    options = argv[: argv.index("--")] if "--" in argv else argv
    argv0 = options[options.index("--argv0") + 1] if "--argv0" in options[:-1] else None
    for option in options:  # the hooks' form: --argv0=-bash (a separate "-bash" reads as an option)
        if option.startswith("--argv0="):
            argv0 = option.removeprefix("--argv0=")
    return start_unsupervised(argv[len(options) + 1:], reason, argv0)


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "hook":
        # Every interactive shell start runs `peninsula hook SHELL`, twice
        # (before and after the re-exec): answered without argparse.
        from peninsula.shell import shells

        if argv[1] in shells.NAMES:
            sys.stdout.write(shells.hook_text(argv[1]))
            return 0
    if argv == ["prompt"]:
        # What starship and friends fork at every prompt.
        from peninsula.cli.shell import PROMPT_FORMAT, print_prompt

        return print_prompt(PROMPT_FORMAT)
    modules = _modules_for(argv)
    parser = summary_parser() if modules == COMMANDS else build_parser(modules)
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Blame the subcommand's own usage, not the top level's.
        chosen = getattr(args, "command", None)
        actions = [a for a in parser._actions if a.dest == "command"]
        owner = actions[0].choices.get(chosen, parser) if actions and chosen else parser
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.version:
        from peninsula import __version__

        print(f"peninsula {__version__}")
        return 0
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return handler(args)
