"""How a command refuses its command line: one line on stderr, exit 125."""

from __future__ import annotations

import sys


EXIT_USAGE = 125


def fail(message: str) -> int:
    sys.stderr.write(f"peninsula: {message}\n")
    return EXIT_USAGE
