"""`peninsula log`: recent denials, for people (JSON with --json)."""

from __future__ import annotations

import json
import sys

from peninsula.config import defaults
from peninsula.supervisor.denial_log import read_lines
from peninsula.cli.registry import summary


def register(sub) -> None:
    log = sub.add_parser("log", help=summary("log"), description="Show the most recent denials from the log.")
    log.add_argument("-n", "--lines", type=int, default=20, help="how many (default: %(default)s)")
    log.add_argument("--json", action="store_true", help="print the raw JSON lines")
    log.add_argument("--file", default=None, help="log file (default: $XDG_STATE_HOME/peninsula/denials.jsonl)")
    log.set_defaults(handler=cmd_log)


def tail(path: str, count: int) -> list[str]:
    """The last count lines of the log and its rotated part."""
    lines = read_lines(path)
    return lines[-count:] if count > 0 else []


def cmd_log(args) -> int:
    path = args.file or defaults.default_log()
    lines = tail(path, args.lines)
    if not lines:
        print(f"no denials logged in {path}")
        return 0
    for line in lines:
        if args.json:
            print(line)
            continue
        try:
            entry = json.loads(line)
            # A summary line stands for that many more of the same refusal.
            again = f" ({entry['repeated']} more times, the last shown)" if entry.get("repeated") else ""
            print(f"{entry['time']}  {entry['comm']} (pid {entry['pid']}) {entry['op']} {entry['path']}: {entry['reason']}{again}")
        except (ValueError, KeyError):
            print(f"(unreadable log line) {line[:200]}", file=sys.stderr)
    return 0
