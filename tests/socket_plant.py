"""A program that tries to put a socket at each target by every route a
confined process has: bind, mknod(S_IFSOCK), rename of a socket bound
elsewhere, symlink (tests/sandbox/test_socket_places.py,
tests/shell/test_socket_dirs.py)."""

from __future__ import annotations

import textwrap

# argv: STAGING TARGET...; for each target, each route: "<route> <target> ok|ERRNO".
# A rename's source socket is bound in STAGING, on the target's filesystem.
PLANT = textwrap.dedent("""
    import errno, os, socket, stat, sys
    staging, targets = sys.argv[1], sys.argv[2:]
    def attempt(route, target, fn):
        try:
            fn()
            print(route, target, "ok", flush=True)
        except OSError as err:
            print(route, target, errno.errorcode[err.errno], flush=True)
        if os.path.lexists(target):
            os.unlink(target)
    def bind(target):
        s = socket.socket(socket.AF_UNIX)
        s.bind(target)
        s.listen()
    def rename(target):
        source = os.path.join(staging, "src.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(source)
        try:
            os.rename(source, target)
        finally:
            if os.path.lexists(source):
                os.unlink(source)
    for target in targets:
        attempt("bind", target, lambda: bind(target))
        attempt("mknod", target, lambda: os.mknod(target, stat.S_IFSOCK | 0o600))
        attempt("rename", target, lambda: rename(target))
        attempt("symlink", target, lambda: os.symlink("/tmp/elsewhere.sock", target))
""")
ROUTES = ("bind", "mknod", "rename", "symlink")


def results(proc) -> dict:
    """{(route, target): "ok" or the errno's name} from PLANT's output."""
    return {(route, target): result for route, target, result in
            (line.split() for line in proc.stdout.decode().splitlines())}
