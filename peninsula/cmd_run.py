"""`peninsula run`: confine one command and everything it starts."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .cli import EXIT_USAGE, fail

RUN_EPILOG = """\
what is writable:
  the project directory (default: the current directory), /tmp, /var/tmp,
  /dev/shm, $XDG_RUNTIME_DIR, the terminal and /dev/null, and every --write
  PATH. Shell start-up files, ~/.ssh, ~/.gnupg, git's global config,
  toolchains in ~/.local/bin, ~/.cargo/bin, ~/.rustup and peninsula's own
  files stay protected even beneath a writable root. Reading and executing
  are never restricted.

exit status:
  the command's own status; 128+N when it was killed by signal N;
  123 the supervisor died (the command's writes were cut off);
  125 peninsula could not set up the sandbox (bad option, bad config,
      kernel without Landlock or seccomp user-notify, nesting);
  126 the command could not be executed; 127 the command was not found.
"""


def register(sub) -> None:
    run = sub.add_parser(
        "run",
        help="confine one command and everything it starts",
        description="Run CMD so that it, and every process it starts, can write only inside "
        "the project and the allowed paths.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--project", metavar="DIR", help="the writable project directory (default: current directory)")
    run.add_argument("--write", "-w", metavar="PATH", action="append", default=[], help="also allow writes beneath PATH (repeatable)")
    run.add_argument("--protect", metavar="PATH", action="append", default=[], help="deny writes beneath PATH even inside a writable root (repeatable; globs allowed)")
    run.add_argument("--read-only", action="store_true", help="no writes except the temp dirs and terminal")
    run.add_argument("--config", metavar="FILE", action="append", default=[], help="TOML file with the same options (repeatable)")
    run.add_argument("--log", metavar="FILE", help="append one JSON line per denial here (default: $XDG_STATE_HOME/peninsula/denials.jsonl)")
    run.add_argument("--report", metavar="FILE", help="write a JSON result (status, exit code, times, denials) to FILE, or - for stderr")
    run.add_argument("--quiet", "-q", action="store_true", help="do not print denial notices")
    run.add_argument("--verbose", "-v", action="store_true", help="print supervisor diagnostics")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    run.set_defaults(handler=main)


def main(args) -> int:
    from .config import ConfigError, Options, load_options
    from .sandbox import Sandbox, SandboxError

    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        return fail("run: no command given (usage: peninsula run [OPTIONS] -- CMD [ARGS...])")
    if args.project and not os.path.isdir(args.project):
        return fail(f"run: --project {args.project}: not a directory")
    options = Options()
    try:
        for name in args.config:
            options = options.merged(load_options(name))
    except ConfigError as err:
        return fail(str(err))
    box = Sandbox(
        project=args.project,
        write=args.write,
        protect=args.protect,
        read_only=args.read_only,
        log=args.log,
        quiet=args.quiet,
        verbose=args.verbose,
    )
    box.options = options.merged(box.options)
    try:
        result = box.run(command)
    except SandboxError as err:
        return fail(str(err))
    if result.message and result.status == "setup failed":
        sys.stderr.write(result.message + "\n")
    if args.report:
        text = json.dumps(result.__dict__, indent=2) + "\n"
        if args.report == "-":
            sys.stderr.write(text)
        else:
            with open(args.report, "w") as handle:
                handle.write(text)
    return result.returncode
