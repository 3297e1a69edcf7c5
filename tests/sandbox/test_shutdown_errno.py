"""shutdown() of confined processes is trapped (all but SHUT_WR) and made
by the supervisor on a duplicate of their socket (supervisor/handlers/
listen.py): it must answer what the kernel answers, the same program run
unconfined being the reference."""

from __future__ import annotations

import textwrap

from .helpers import PY

# argv: a directory to bind a unix socket in. Prints one line per case:
# its name, the result (0 or the errno's name) and, for a listener, whether
# it still listens afterwards (the call reached the caller's own socket).
PROGRAM = textwrap.dedent("""
    import ctypes, errno, os, socket, sys
    libc = ctypes.CDLL(None, use_errno=True)
    NR_SHUTDOWN = 48  # x86_64

    def shut(name, fd, how, extra=""):
        r = libc.syscall(ctypes.c_long(NR_SHUTDOWN), ctypes.c_long(fd), ctypes.c_long(how))
        print(name, 0 if r == 0 else errno.errorcode[ctypes.get_errno()], extra() if extra else "")

    kept = []  # sockets stay open to the end

    def new(*args):
        kept.append(socket.socket(*args))
        return kept[-1]

    def listener(family=socket.AF_INET):
        s = new(family, socket.SOCK_STREAM)
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        s.listen(4)
        return s

    def listening(s):
        return lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)

    for how in ("SHUT_RD", "SHUT_WR", "SHUT_RDWR"):
        s = listener()
        shut("listening-" + how, s.fileno(), getattr(socket, how), listening(s))
    s = listener(socket.AF_INET6)
    shut("listening6", s.fileno(), socket.SHUT_RDWR, listening(s))
    s = listener()
    shut("listening-again", s.fileno(), socket.SHUT_RDWR)
    shut("closed-again", s.fileno(), socket.SHUT_RDWR)
    s = listener()
    shut("listening-high-bits-how", s.fileno(), (1 << 32) | socket.SHUT_RDWR, listening(s))
    shut("listening-high-bits-fd", (1 << 32) | listener().fileno(), socket.SHUT_RDWR)
    server = listener()
    for how in ("SHUT_RD", "SHUT_WR", "SHUT_RDWR"):
        c = socket.create_connection(server.getsockname())
        kept.append(c)
        shut("connected-" + how, c.fileno(), getattr(socket, how))
    shut("unconnected-tcp", new().fileno(), socket.SHUT_RDWR)
    shut("unconnected-udp", new(socket.AF_INET, socket.SOCK_DGRAM).fileno(), socket.SHUT_RDWR)
    a, b = socket.socketpair()
    shut("socketpair", a.fileno(), socket.SHUT_RDWR)
    shut("unix-unconnected", new(socket.AF_UNIX).fileno(), socket.SHUT_RDWR)
    u = new(socket.AF_UNIX)
    u.bind(os.path.join(sys.argv[1], "sock"))
    shut("o-path-socket", os.open(os.path.join(sys.argv[1], "sock"), os.O_PATH), socket.SHUT_RDWR)
    r, w = os.pipe()
    shut("pipe", r, socket.SHUT_RDWR)
    shut("file", os.open(sys.argv[1], os.O_RDONLY), socket.SHUT_RDWR)
    shut("bad-fd", 1000, socket.SHUT_RDWR)
    shut("negative-fd", -1, socket.SHUT_RDWR)
    for how in (3, -1, 1 << 31):
        shut(f"bad-how-{how}", listener().fileno(), how)
    shut("bad-how-pipe", r, 7)
    shut("bad-how-bad-fd", 1000, 7)
""")

EXPECTED = {
    "listening-SHUT_RD": "0 0", "listening-SHUT_WR": "0 1", "listening-SHUT_RDWR": "0 0",
    "listening6": "0 0", "listening-again": "0", "closed-again": "ENOTCONN",
    "listening-high-bits-how": "0 0", "listening-high-bits-fd": "0",
    "connected-SHUT_RD": "0", "connected-SHUT_WR": "0", "connected-SHUT_RDWR": "0",
    "unconnected-tcp": "ENOTCONN", "unconnected-udp": "ENOTCONN", "socketpair": "0", "unix-unconnected": "0",
    "o-path-socket": "EBADF", "pipe": "ENOTSOCK", "file": "ENOTSOCK", "bad-fd": "EBADF", "negative-fd": "EBADF",
    "bad-how-3": "EINVAL", "bad-how--1": "EINVAL", "bad-how-2147483648": "EINVAL",
    "bad-how-pipe": "ENOTSOCK", "bad-how-bad-fd": "EBADF",
}


def _results(proc) -> dict[str, str]:
    assert proc.returncode == 0, proc
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1].strip() for line in proc.stdout.decode().splitlines()}


def test_shutdown_answers_as_the_kernel(who):
    proj = who.mkdir(who.base / "proj")
    unconfined = _results(who.run([PY, "-c", PROGRAM, who.mkdir(who.base / "free")]))
    assert unconfined == EXPECTED
    confined = who.peninsula("run", "--write", proj, "--", PY, "-c", PROGRAM, who.mkdir(proj / "d"))
    assert _results(confined) == unconfined, confined.stderr
    assert b"peninsula:" not in confined.stderr, confined.stderr
