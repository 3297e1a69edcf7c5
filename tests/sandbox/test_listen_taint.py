"""An outside server's listening TCP socket leaked into the sandbox, taken
back to CLOSE by the confined process (shutdown(SHUT_RD / SHUT_RDWR) or
connect(AF_UNSPEC)) and listened on again, must not become the
confinement's: listen.py records a socket only when it was not listening
already, so these calls are trapped and taint a listener without a record
first (supervisor/handlers/listen.py). The outside server still holds the
socket and would accept a confined client's connection from it.

Each route is tried with the server's own explicit port (kept by the
shutdown: SOCK_BINDPORT_LOCK) and with its bind(port 0) (released: the
listen picks a new one), unconfined first (the route works), then under
`peninsula run`.
"""

from __future__ import annotations

import textwrap

import pytest

from .helpers import PY
from .test_loopback_leaked import SERVER

# As test_loopback_leaked's server, bound to a port it chose itself.
SERVER_FIXED_PORT = SERVER.replace(
    's.bind(("127.0.0.1", 0))',
    'p = socket.socket(); p.bind(("127.0.0.1", 0)); free = p.getsockname()[1]; p.close()\n'
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", free))')
assert SERVER_FIXED_PORT != SERVER

# argv: port, file for the server to write, leaked fd, route. Prints the
# route's result, then "sent" or "errno NAME" for the connect.
CLIENT = textwrap.dedent("""
    import ctypes, errno, socket, sys
    leaked = socket.socket(fileno=int(sys.argv[3]))
    route = sys.argv[4]
    if route == "AF_UNSPEC":
        libc = ctypes.CDLL(None, use_errno=True)
        print("disconnect", libc.connect(leaked.fileno(), bytes(16), 16), ctypes.get_errno())
    else:
        leaked.shutdown(getattr(socket, route))
        print("disconnect 0 0")
    print("listening", leaked.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))  # LISTEN -> CLOSE
    leaked.listen(8)
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", leaked.getsockname()[1]))
        s.sendall(sys.argv[2].encode() + b"\\n")
        s.close()
        print("sent")
    except OSError as err:
        print("errno", errno.errorcode[err.errno])
""")


@pytest.mark.parametrize("route", ["SHUT_RDWR", "SHUT_RD", "AF_UNSPEC"])
@pytest.mark.parametrize("server", [SERVER_FIXED_PORT, SERVER], ids=["fixed-port", "port-0"])
def test_relisten_after_disconnect_refused(who, route, server):
    proj, out = who.mkdir(who.base / "proj"), who.mkdir(who.base / "out")
    control = who.run([PY, "-c", server, "leak", PY, "-c", CLIENT, "{port}", out / "control", "{fd}", route])
    assert control.stdout.split() == b"disconnect 0 0 listening 0 sent".split(), control
    assert (out / "control").exists(), control
    confined = who.run([PY, "-c", server, "leak", "python3", "-m", "peninsula", "run", "--write", str(proj), "--",
                        PY, "-c", CLIENT, "{port}", out / "escaped", "{fd}", route])
    assert confined.stdout.split() == b"disconnect 0 0 listening 0 errno EACCES".split(), confined
    assert b"peninsula: denied connect" in confined.stderr, confined.stderr
    assert not (out / "escaped").exists(), confined
