"""test_leaked_listeners' outside server in a shell session, its TCP
listening fd handed to a confined process that takes it back to CLOSE
(shutdown(SHUT_RDWR), or connect(AF_UNSPEC); the server's bind(port 0)
port is released) and listens on it again: the socket is not recorded as
the confinement's (a listener seen without a record is tainted,
supervisor/handlers/listen.py), so the confined connect to its new port
is refused while the outside server would accept from it. Unconfined,
the same route works."""

from __future__ import annotations

import time

import pytest

from .conftest import supervised
from . import test_leaked_listeners as base

_AGAIN = """    for fd in fds:
        socket.socket(fileno=os.dup(fd)).listen(8)
"""
assert _AGAIN in base.TAKER
ROUTES = {
    "shutdown": "l.shutdown(socket.SHUT_RDWR)",
    "unspec": "import ctypes; assert ctypes.CDLL(None).connect(l.fileno(), bytes(16), 16) == 0",
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_session_relisten_after_disconnect_refused(term_factory, home, user, monkeypatch, route):
    taker = base.TAKER.replace(_AGAIN, f"""    l = socket.socket(fileno=os.dup(fds[0])); {ROUTES[route]}; l.listen(8)
    port = l.getsockname()[1]
""")
    monkeypatch.setattr(base, "TAKER", taker)
    out = home / "out"
    term = term_factory("bash")
    supervised(term)
    control = base._attempt(term, user, home, ".", "again", "control")  # the unconfined shell: the route works
    assert "control tcp sent" in control, control
    term.run("cd proj")
    text = base._attempt(term, user, home, "proj", "again", "again")
    assert "again tcp EACCES" in text and "peninsula: denied connect" in text, text
    time.sleep(0.3)
    assert sorted(p.name for p in out.iterdir()) == ["control-tcp", "control-unix"]
