"""`peninsula check --connect PATH` outside a session answers as a
`peninsula run` would, and the run agrees with it: an outside listener is
refused, the shipped allow-list ($SSH_AUTH_SOCK as the run starts with it)
is reached."""

from __future__ import annotations

import subprocess
import textwrap

from .helpers import PY

# A listener outside any sandbox that answers each connection with "hi".
LISTENER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_UNIX)
    s.bind(sys.argv[1])
    s.listen(8)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.sendall(b"hi\\n")
        c.close()
""")

CLIENT = textwrap.dedent("""
    import errno, socket, sys
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
        print(s.makefile().readline().strip())
    except OSError as err:
        print(errno.errorcode[err.errno])
""")


def test_check_connect_outside_a_session_matches_run(who):
    proj, out = who.mkdir(who.base / "proj"), who.mkdir(who.base / "out")
    path = out / "service.sock"
    server = subprocess.Popen(who.prefix() + [PY, "-c", LISTENER, str(path)], env=who.env(), stdout=subprocess.PIPE)
    try:
        assert server.stdout.readline().strip() == b"ready"
        assert who.run([PY, "-c", CLIENT, path]).stdout.strip() == b"hi"  # the route works unconfined
        for env, verdict, reached in (({}, b"DENIED", b"EACCES"), ({"SSH_AUTH_SOCK": str(path)}, b"allowed", b"hi")):
            check = who.peninsula("check", "--connect", path, env=env, cwd=proj)
            assert check.stdout.startswith(f"connect {path}: ".encode() + verdict), check
            assert check.returncode == (0 if verdict == b"allowed" else 1), check
            if verdict == b"DENIED":
                assert b"--allow-socket" in check.stdout, check
            confined = who.peninsula("run", "--write", proj, "--", PY, "-c", CLIENT, path, env=env, cwd=proj)
            assert confined.stdout.strip() == reached, confined
    finally:
        server.kill()
        server.wait()
