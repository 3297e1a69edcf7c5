"""listen() of confined processes (supervisor/handlers/listen.py): made by
the supervisor on the target's socket, with the kernel's answers, and
judged by --allow-bind when it would pick a port itself."""

from __future__ import annotations

import socket
import textwrap

from .helpers import PY

# Each argv word is one probe; prints "<probe> ok" or "<probe> <ERRNO>".
PROBE = textwrap.dedent("""
    import ctypes, errno, os, socket, sys
    libc = ctypes.CDLL(None, use_errno=True)

    def listen(fd):
        if libc.listen(fd, 4) != 0:
            raise OSError(ctypes.get_errno(), "listen")

    def probe(name):
        if name == "badfd":
            listen(-1)
        elif name == "notsock":
            listen(os.open("/dev/null", os.O_RDONLY))
        elif name == "udp":
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); listen(u.fileno())
        elif name == "unbound":  # picks an ephemeral port itself
            s = socket.socket(); listen(s.fileno()); keep.append(s)
        elif name == "unbound6":
            s = socket.socket(socket.AF_INET6); listen(s.fileno()); keep.append(s)
        elif name == "port0":
            socket.socket().bind(("127.0.0.1", 0))
        elif name.startswith("bound:"):
            s = socket.socket(); s.bind(("127.0.0.1", int(name[6:]))); listen(s.fileno()); listen(s.fileno())
            keep.append(s)
        elif name == "connected":  # a connected stream socket: EINVAL
            a = socket.socket(); a.bind(("127.0.0.1", 0)); a.listen()
            c = socket.create_connection(a.getsockname()); listen(c.fileno())
        elif name == "unix":  # the listener's peer is the listening process (its clients' SO_PEERCRED)
            path = os.path.join(sys.argv[1], "unix.sock")
            srv = socket.socket(socket.AF_UNIX); srv.bind(path); listen(srv.fileno())
            cli = socket.socket(socket.AF_UNIX); cli.connect(path)
            pid = int.from_bytes(cli.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)[:4], "little")
            os.unlink(path)
            if pid != os.getpid():
                raise OSError(errno.EPROTO, "peer pid %d" % pid)

    keep = []
    for name in sys.argv[2:]:
        try:
            probe(name)
            print(name, "ok")
        except OSError as err:
            print(name, errno.errorcode[err.errno])
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lines(proc) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode().splitlines()


def test_listen_answers_as_the_kernel(who):
    """Confined, every listen gets what it gets unconfined (the positive
    control is the same probe without peninsula)."""
    proj = who.mkdir(who.base / "proj")
    probes = ["badfd", "notsock", "udp", "unbound", "unbound6", f"bound:{_free_port()}", "connected", "unix"]
    plain = _lines(who.run([PY, "-c", PROBE, proj, *probes]))
    assert plain == ["badfd EBADF", "notsock ENOTSOCK", "udp ENOTSUP", "unbound ok", "unbound6 ok",
                     probes[5] + " ok", "connected EINVAL", "unix ok"]
    confined = _lines(who.peninsula("run", "--write", proj, "--", PY, "-c", PROBE, proj, *probes, cwd=proj))
    assert confined == plain


def test_allow_bind_judges_the_port_listen_picks(who):
    """listen() on an unbound TCP socket binds an ephemeral port: under
    --allow-bind it is refused as a bind to port 0 is (EACCES, Landlock's
    answer), with a notice; a listen on an allowed port bound first works."""
    proj = who.mkdir(who.base / "proj")
    good = _free_port()
    probes = ["unbound", "unbound6", "port0", f"bound:{good}"]
    plain = _lines(who.run([PY, "-c", PROBE, proj, *probes]))
    assert plain == [f"{p} ok" for p in probes]
    proc = who.peninsula("run", "--write", proj, "--allow-bind", str(good), "--", PY, "-c", PROBE, proj, *probes, cwd=proj)
    assert _lines(proc) == ["unbound EACCES", "unbound6 EACCES", "port0 EACCES", f"bound:{good} ok"]
    assert "denied listen of tcp port 0" in proc.stderr.decode(), proc.stderr
