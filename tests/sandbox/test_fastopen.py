"""TCP Fast Open connects inside a send (MSG_FASTOPEN on sendto, sendmsg,
sendmmsg), past connect() and past Landlock's TCP connect rule: it would
bypass --allow-connect. Confined processes get EOPNOTSUPP, the kernel's
answer when client Fast Open is disabled; TCP_FASTOPEN_CONNECT goes
through connect(), which the supervisor judges. A listener started
outside records what reaches it; the positive control is each route
unconfined."""

from __future__ import annotations

import subprocess
import textwrap

from .helpers import PY

LISTENER = textwrap.dedent("""
    import socket, sys, threading
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    print("ready", s.getsockname()[1], flush=True)
    while True:
        c, _ = s.accept()
        data = c.recv(64)
        print("got", data.decode().strip(), flush=True)
        c.close()
""")

SENDS = textwrap.dedent("""
    import ctypes, errno, socket, struct, sys
    port, modes = int(sys.argv[1]), sys.argv[2:]
    MSG_FASTOPEN, TCP_FASTOPEN_CONNECT = 0x20000000, 30
    libc = ctypes.CDLL(None, use_errno=True)
    for mode in modes:
        s = socket.socket()
        try:
            if mode == "sendto":
                s.sendto(b"sendto", MSG_FASTOPEN, ("127.0.0.1", port))
            elif mode == "sendmsg":
                s.sendmsg([b"sendmsg"], [], MSG_FASTOPEN, ("127.0.0.1", port))
            elif mode == "sendmmsg":
                # struct mmsghdr { struct msghdr { name, namelen, iov, iovlen, control, controllen, flags }, len }
                addr = ctypes.create_string_buffer(struct.pack("!HH4s8x", socket.AF_INET, port, bytes([127, 0, 0, 1])), 16)
                addr[0:2] = struct.pack("H", socket.AF_INET)
                data = ctypes.create_string_buffer(b"sendmmsg")
                iov = struct.pack("QQ", ctypes.addressof(data), 8)
                iovbuf = ctypes.create_string_buffer(iov, 16)
                hdr = ctypes.create_string_buffer(struct.pack("QI4xQQQQi4xI4x", ctypes.addressof(addr), 16,
                                                              ctypes.addressof(iovbuf), 1, 0, 0, 0, 0), 64)
                if libc.sendmmsg(s.fileno(), hdr, 1, MSG_FASTOPEN) < 0:
                    raise OSError(ctypes.get_errno(), "sendmmsg")
            else:
                s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
                s.connect(("127.0.0.1", port))
                s.send(b"sockopt")
            print(mode, "sent", flush=True)
        except OSError as err:
            print(mode, errno.errorcode[err.errno], flush=True)
        s.close()
""")

MODES = ["sendto", "sendmsg", "sendmmsg", "sockopt"]


def _lines(proc, count):
    return sorted(proc.stdout.readline().decode().strip() for _ in range(count))


def test_fast_open_cannot_pass_allow_connect(who):
    proj = who.mkdir(who.base / "proj")
    listener = subprocess.Popen(who.prefix() + [PY, "-c", LISTENER], env=who.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    try:
        ready = listener.stdout.readline().split()
        assert ready[0] == b"ready", ready
        port = ready[1].decode()
        control = who.run([PY, "-c", SENDS, port, *MODES])
        assert control.stdout.decode().split() == [w for m in MODES for w in (m, "sent")], control
        assert _lines(listener, 4) == sorted(f"got {m}" for m in MODES)
        other = str(int(port) + 1 if int(port) < 65535 else int(port) - 1)
        confined = who.peninsula("run", "--write", proj, "--allow-connect", other, "--", PY, "-c", SENDS, port, *MODES)
        # Python names errno 95 ENOTSUP; on Linux it is EOPNOTSUPP too.
        assert confined.stdout.decode().split() == ["sendto", "ENOTSUP", "sendmsg", "ENOTSUP",
                                                    "sendmmsg", "ENOTSUP", "sockopt", "EACCES"], confined
        # The listener's port allowed: the connect route (the sockopt) still works.
        # (--allow-loopback: the listener is outside the sandbox, see test_loopback.py)
        allowed = who.peninsula("run", "--write", proj, "--allow-connect", port, "--allow-loopback", port, "--",
                                PY, "-c", SENDS, port, "sockopt")
        assert allowed.stdout.decode().split() == ["sockopt", "sent"], allowed
        assert listener.stdout.readline().decode().strip() == "got sockopt"  # nothing confined came before it
    finally:
        listener.kill()
        listener.wait()
