"""`sandlock run -w DIR -r / -- CMD` for the bench, through sandlock's Python SDK.

    .venv/bin/python bench/sandlock_run.py -w DIR [-w DIR2] -r / -- CMD...

sandlock's PyPI wheel (`.venv/bin/pip install sandlock`, the `bench` extra)
ships the SDK and no CLI; this is the smallest CLI the bench needs: the
writable and readable roots, the command's output passed through, its exit
status returned.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-w", dest="writable", action="append", default=[])
    ap.add_argument("-r", dest="readable", action="append", default=[])
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command")
    from sandlock import Sandbox

    result = Sandbox(fs_writable=args.writable, fs_readable=args.readable).run(cmd)
    sys.stdout.buffer.write(result.stdout or b"")
    sys.stderr.buffer.write(result.stderr or b"")
    if not result.success and result.exit_code == -1:
        sys.stderr.write(f"sandlock_run: {getattr(result, 'error', None) or result.reason}\n")
        return 125
    return result.exit_code
if __name__ == "__main__":
    sys.exit(main())
