"""A listening socket shared with a process outside the confinement
(issue 11, loopback): the supervisor finds a socket's holders by reading
fd tables, and it sees none outside its own Landlock domain (nor other
users', when it is not root). So an outside server whose listening fd
leaked into the sandbox (socket activation, a build hook run without
CLOEXEC) is seen held only inside; it is refused because no confined
process made it listen (the trapped listen() records that,
supervisor/handlers/listen.py), even when a confined process listens on
it again.
"""

from __future__ import annotations

import textwrap

import pytest

from .helpers import PY

# The outside server: it writes the file named by the line it receives.
# It is busy until its child has run (it accepts only then), so that the
# connection waits on its queue and is judged by the listener's holders.
# argv: "leak" or "keep", then the child's argv ("{port}" replaced). Its
# listening fd is inherited by the child only with "leak".
SERVER = textwrap.dedent("""
    import socket, subprocess, sys
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    port = s.getsockname()[1]
    leak = sys.argv[1] == "leak"
    s.set_inheritable(leak)
    child = subprocess.run([a.replace("{port}", str(port)).replace("{fd}", str(s.fileno())) for a in sys.argv[2:]],
                           pass_fds=(s.fileno(),) if leak else (), capture_output=True)
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

# argv: port, file for the server to write, and optionally the leaked fd's
# number, to listen on again first. Prints "sent" or "errno NAME".
CLIENT = textwrap.dedent("""
    import errno, socket, sys
    if len(sys.argv) > 3:
        socket.socket(fileno=int(sys.argv[3])).listen(8)
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
        s.sendall(sys.argv[2].encode() + b"\\n")
        s.close()
        print("sent")
    except OSError as err:
        print("errno", errno.errorcode[err.errno])
""")


def _confined(who, proj):
    return ["python3", "-m", "peninsula", "run", "--write", str(proj), "--"]


def test_outside_server_controls(who):
    """The route works unconfined, even with the fd leaked; confined, the
    server is refused while its listening fd stays outside."""
    proj, out = who.mkdir(who.base / "proj"), who.mkdir(who.base / "out")
    control = who.run([PY, "-c", SERVER, "leak", PY, "-c", CLIENT, "{port}", out / "control"])
    assert control.stdout.split() == [b"sent"], control
    assert (out / "control").exists()
    kept = who.run([PY, "-c", SERVER, "keep", *_confined(who, proj), PY, "-c", CLIENT, "{port}", out / "kept"])
    assert kept.stdout.split() == [b"errno", b"EACCES"], kept
    assert "denied connect of 127.0.0.1:" in kept.stderr.decode(), kept
    assert not (out / "kept").exists()


@pytest.mark.parametrize("listen_again", [False, True], ids=["leaked", "listened-again"])
def test_leaked_listening_fd_is_refused(who, listen_again):
    proj, out = who.mkdir(who.base / "proj"), who.mkdir(who.base / "out")
    again = ["{fd}"] if listen_again else []
    control = who.run([PY, "-c", SERVER, "leak", PY, "-c", CLIENT, "{port}", out / "control", *again])
    assert control.stdout.split() == [b"sent"] and (out / "control").exists(), control
    leaked = who.run([PY, "-c", SERVER, "leak", *_confined(who, proj), PY, "-c", CLIENT, "{port}", out / "escaped", *again])
    assert leaked.stdout.split() == [b"errno", b"EACCES"] and not (out / "escaped").exists(), leaked
    assert "not made to listen by a process of this confinement" in leaked.stderr.decode(), leaked
