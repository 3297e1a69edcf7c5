"""Listening sockets of an outside server that reached a confined process
of a shell session (a leak: here the server hands them over itself, over
a socket the confined process listens on) are still outside: a confined
process that connects to them, even after listening on them again, is
refused; unconfined, the same route works (supervisor/handlers/listen.py)."""

from __future__ import annotations

import subprocess
import textwrap
import time

from .conftest import supervised

# The outside server: a TCP and a unix listener that write the file named
# by each line received; it connects to the path in argv[1] once it exists
# and hands both listening fds over (SCM_RIGHTS). argv: hand-over path,
# unix listener path.
SERVER = textwrap.dedent("""
    import os, socket, sys, time
    tcp = socket.socket(); tcp.bind(("127.0.0.1", 0)); tcp.listen(8)
    unix = socket.socket(socket.AF_UNIX); unix.bind(sys.argv[2]); unix.listen(8)
    while True:
        try:
            hand = socket.socket(socket.AF_UNIX); hand.connect(sys.argv[1]); break
        except OSError:
            time.sleep(0.05)
    socket.send_fds(hand, [str(tcp.getsockname()[1]).encode()], [tcp.fileno(), unix.fileno()])
    hand.close()
    for s in (tcp, unix):
        s.settimeout(3)
    while True:
        for s in (tcp, unix):
            try:
                c, _ = s.accept()
            except OSError:
                continue
            line = c.makefile().readline().strip()
            if line:
                open(line, "w").close()
""")

# The confined side: listens on the hand-over path, takes the fds, may
# listen on them again, connects to both listeners. argv: hand-over path,
# unix listener path, proof dir, "again" or "once", a tag for its lines
# and proof files.
TAKER = textwrap.dedent("""
    import errno, os, socket, sys
    hand, unix_path, out, again, tag = sys.argv[1:6]
    if os.path.exists(hand):
        os.unlink(hand)
    srv = socket.socket(socket.AF_UNIX); srv.bind(hand); srv.listen(1)
    c, _ = srv.accept()
    msg, fds, _, _ = socket.recv_fds(c, 64, 2)
    port = int(msg)
    if again == "again":
        for fd in fds:
            socket.socket(fileno=os.dup(fd)).listen(8)
    for kind, family, where in (("tcp", socket.AF_INET, ("127.0.0.1", port)), ("unix", socket.AF_UNIX, unix_path)):
        s = socket.socket(family)
        try:
            s.connect(where)
            s.sendall(f"{out}/{tag}-{kind}\\n".encode())
            print(tag, kind, "sent")
        except OSError as err:
            print(tag, kind, errno.errorcode[err.errno])
        s.close()
""")


def _attempt(term, user, home, where: str, again: str, tag: str) -> str:
    taker = user.write(home / "taker.py", TAKER)
    hand, unix_path = home / where / f"hand-{tag}.sock", home / f"outside-{tag}.sock"
    server = subprocess.Popen(user.prefix() + ["python3", "-c", SERVER, str(hand), str(unix_path)],
                              env=user.env({"HOME": str(home)}))
    try:
        return term.run(f"python3 {taker} {hand} {unix_path} {home / 'out'} {again} {tag}", timeout=30)
    finally:
        server.kill()
        server.wait()


def test_leaked_listeners_stay_outside(term_factory, home, user):
    out = home / "out"
    term = term_factory("bash")
    supervised(term)
    control = _attempt(term, user, home, ".", "again", "control")  # the unconfined shell: the route works
    assert "control tcp sent" in control and "control unix sent" in control, control
    term.run("cd proj")
    for again in ("once", "again"):
        text = _attempt(term, user, home, "proj", again, again)
        assert f"{again} tcp EACCES" in text and f"{again} unix EACCES" in text, text
    time.sleep(0.3)
    assert sorted(p.name for p in out.iterdir()) == ["control-tcp", "control-unix"]
