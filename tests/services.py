"""Small programs the socket tests start as the user's own services
outside any sandbox, and the client that asks them (tests/sandbox and
tests/shell both use them)."""

import textwrap

# A service that runs whatever it receives: the shape of tmux, systemd
# --user or an editor server, without their protocols.
SERVICE = textwrap.dedent("""
    import os, socket, subprocess, sys
    path = sys.argv[1]
    s = socket.socket(socket.AF_UNIX)
    if path.startswith("@"):
        s.bind("\\0" + path[1:])
    else:
        if os.path.exists(path):
            os.unlink(path)
        s.bind(path)
    s.listen(64)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        try:
            data = b""
            while not data.endswith(b"\\n"):
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data.endswith(b"\\n"):
                subprocess.run(["sh", "-c", data.decode()])
                c.sendall(b"ran\\n")
        except OSError:
            pass
        finally:
            c.close()
""")

CLIENT = textwrap.dedent("""
    import errno, socket, sys
    path = sys.argv[1]
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect("\\0" + path[1:] if path.startswith("@") else path)
        s.sendall(sys.argv[2].encode() + b"\\n")
        print("reply", s.recv(16).decode().strip())
    except OSError as err:
        print("errno", errno.errorcode[err.errno])
""")
