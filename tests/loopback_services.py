"""Services on this host's TCP/UDP ports that run what they receive (issue
11, loopback): started as the test identity OUTSIDE any sandbox, so a
confined process reaching one escapes. socat is the canonical one; the
Python ones say when they are ready and bind where a test asks."""

from __future__ import annotations

import socket
import subprocess
import textwrap
import time

# argv: bind address, "tcp" or "udp". Prints "ready PORT".
SERVICE = textwrap.dedent("""
    import socket, subprocess, sys
    host, kind = sys.argv[1], sys.argv[2]
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    if kind == "tcp":
        s.listen(64)
    print("ready", s.getsockname()[1], flush=True)
    while True:
        if kind == "udp":
            data, _ = s.recvfrom(4096)
            subprocess.run(["sh", "-c", data.decode()])
            continue
        c, _ = s.accept()
        data = b""
        while not data.endswith(b"\\n"):
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        if data.endswith(b"\\n"):
            subprocess.run(["sh", "-c", data.decode()])
        c.close()
""")

# argv: host, port, kind (tcp, udp-sendto, udp-connect), command. Prints
# "sent" or "errno NAME".
CLIENT = textwrap.dedent("""
    import errno, socket, sys
    host, port, kind, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].encode() + b"\\n"
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        if kind == "tcp":
            s = socket.socket(fam)
            s.connect((host, port))
            s.sendall(cmd)
            s.shutdown(socket.SHUT_WR)
            s.recv(16)
        elif kind == "udp-sendto":
            socket.socket(fam, socket.SOCK_DGRAM).sendto(cmd, (host, port))
        else:
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.connect((host, port))
            s.send(cmd)
        print("sent", flush=True)
    except OSError as err:
        print("errno", errno.errorcode[err.errno], flush=True)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    return bool(out.strip())


def start_socat(prefix: list[str], env: dict, cwd: str):
    """`socat TCP-LISTEN:PORT,bind=127.0.0.1,fork,reuseaddr EXEC:/bin/sh`:
    a shell for whoever connects. Returns (process, port)."""
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(prefix + ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", "EXEC:/bin/sh"],
                                env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.poll() is None and not listening(port):
            time.sleep(0.02)
        if proc.poll() is None and listening(port):
            return proc, port
        proc.kill()
        proc.wait()
    raise RuntimeError("socat did not start")


def start_service(prefix: list[str], env: dict, cwd: str, python: str, host: str, kind: str):
    proc = subprocess.Popen(prefix + [python, "-c", SERVICE, host, kind], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().split()
    assert line[:1] == [b"ready"], line
    return proc, int(line[1])


def stop(proc) -> None:
    proc.kill()
    proc.wait()


def wait_for(path, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.05)
    return path.exists()
