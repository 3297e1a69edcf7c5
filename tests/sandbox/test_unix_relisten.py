"""An outside server's unix listening socket leaked into the sandbox (issue
11): a unix stream listener is judged by the process that last called
listen() on it (SO_PEERPIDFD), and listen() on a socket already listening
makes its caller that process. So a confined process that listens again
on the leaked fd would make the outside server look inside; the socket
bound at the name must also be one a confined process made listen
(supervisor/handlers/listen.py records it), and this one was not.
"""

from __future__ import annotations

import textwrap

from .helpers import PY

# The outside server: it writes the file named by the line it receives,
# accepting only once its child has run. argv: socket path, then the
# child's argv ("{fd}" replaced by the leaked listening fd's number).
SERVER = textwrap.dedent("""
    import socket, subprocess, sys
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[1])
    s.listen(8)
    s.set_inheritable(True)
    child = subprocess.run([a.replace("{fd}", str(s.fileno())) for a in sys.argv[2:]],
                           pass_fds=(s.fileno(),), capture_output=True)
    sys.stdout.buffer.write(child.stdout)
    sys.stderr.buffer.write(child.stderr)
    s.settimeout(1)
    try:
        c, _ = s.accept()
    except TimeoutError:
        sys.exit()
    line = c.makefile().readline().strip()
    if line:
        open(line, "w").close()
""")

# argv: socket path, file for the server to write, and optionally the
# leaked fd's number, to listen on again first. Prints "sent" or "errno NAME".
CLIENT = textwrap.dedent("""
    import errno, socket, sys
    if len(sys.argv) > 3:
        socket.socket(fileno=int(sys.argv[3])).listen(8)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
        s.sendall(sys.argv[2].encode() + b"\\n")
        s.close()
        print("sent")
    except OSError as err:
        print("errno", errno.errorcode[err.errno])
""")


def _attempt(who, name: str, again: bool, confined: bool):
    proj, out = who.mkdir(who.base / "proj"), who.mkdir(who.base / "out")
    path = out / f"{name}.sock"
    runner = ["python3", "-m", "peninsula", "run", "--write", str(proj), "--"] if confined else []
    proc = who.run([PY, "-c", SERVER, path, *runner, PY, "-c", CLIENT, path, out / name, *(["{fd}"] if again else [])])
    return proc, (out / name).exists()


def test_leaked_unix_listener_controls(who):
    """Unconfined the route works, listened again or not; confined, the
    leaked listener is refused while no confined process listens on it."""
    for again in (False, True):
        proc, wrote = _attempt(who, f"control-{again}", again, confined=False)
        assert proc.stdout.split() == [b"sent"] and wrote, proc
    proc, wrote = _attempt(who, "leaked", False, confined=True)
    assert proc.stdout.split() == [b"errno", b"EACCES"] and not wrote, proc


def test_leaked_unix_listener_listened_again_is_refused(who):
    proc, wrote = _attempt(who, "again", True, confined=True)
    assert proc.stdout.split() == [b"errno", b"EACCES"] and not wrote, proc
    assert "denied connect of" in proc.stderr.decode(), proc


# A server of the confinement's own: it listens, a forked child accepts and
# replies, the parent connects. argv: socket path. Prints the reply.
OWN = textwrap.dedent("""
    import os, socket, sys
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[1])
    s.listen(8)
    if os.fork() == 0:
        c, _ = s.accept()
        c.sendall(b"served\\n")
        os._exit(0)
    c = socket.socket(socket.AF_UNIX)
    c.connect(sys.argv[1])
    print(c.makefile().readline().strip())
""")


def test_own_listener_listened_again_is_reached(who):
    """The positive control of the rule: a socket the confinement made
    listen stays reachable, listened again or not."""
    proj = who.mkdir(who.base / "proj")
    code = OWN.replace("s.listen(8)\n", "s.listen(8)\ns.listen(16)\n")
    for source in (OWN, code):
        proc = who.peninsula("run", "--write", proj, "--", PY, "-c", source, proj / "own.sock", cwd=proj)
        (proj / "own.sock").unlink(missing_ok=True)
        assert proc.stdout.split() == [b"served"], proc
