"""A refused unix connect must leave no connection that carried a byte.

Until the listener was judged before the target's socket was connected, a
second thread of the target spinning on write(fd) got its bytes to the
refused listener in the window between the connect and the shutdown (the
old code lost within 1-75 rounds). The service here runs what it receives,
started OUTSIDE the sandbox; the positive control is the same racer
unconfined, whose first round writes.
"""

from __future__ import annotations

import textwrap
import time
import uuid

import pytest

from services import SERVICE

from .helpers import PY
from .test_sockets import _start, _stop

ROUNDS = 200

# argv: address (@name for an abstract one), directory for the proof files,
# rounds. Prints one line: how many rounds wrote, and the errnos met.
RACER = textwrap.dedent("""
    import errno, os, socket, sys, threading
    path, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    addr = "\\0" + path[1:] if path.startswith("@") else path
    written, errs = 0, set()
    for i in range(rounds):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        fd = s.fileno()
        payload = f"touch {out}/escaped-{i}\\n".encode()
        done, won = threading.Event(), []
        def spin():
            while not done.is_set():
                try:
                    won.append(os.write(fd, payload))
                    return
                except OSError:
                    pass
        t = threading.Thread(target=spin)
        t.start()
        try:
            s.connect(addr)
        except OSError as err:
            errs.add(errno.errorcode[err.errno])
        done.set()
        t.join()
        s.close()
        if won:
            written += 1
            break
    print("written", written, "errors", ",".join(sorted(errs)) or "-", flush=True)
""")


@pytest.mark.parametrize("kind", ["pathname", "abstract"])
def test_threaded_writer_gets_no_byte_to_a_refused_listener(who, kind):
    proj = who.mkdir(who.base / "proj")
    out = who.mkdir(who.base / "out")
    racer = who.write(who.base / "racer.py", RACER)
    address = str(who.base / "svc.sock") if kind == "pathname" else f"@pt-{uuid.uuid4().hex[:8]}"
    service = _start(who, [PY, "-c", SERVICE, address])
    try:
        control = who.run([PY, racer, address, out, "5"])
        assert control.stdout.decode().split()[:2] == ["written", "1"], control
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not list(out.iterdir()):
            time.sleep(0.05)
        proofs = list(out.iterdir())
        assert len(proofs) == 1 and proofs[0].name.startswith("escaped-"), proofs
        proofs[0].unlink()
        confined = who.peninsula("run", "--write", proj, "--", PY, racer, address, out, str(ROUNDS))
        refused = "EACCES" if kind == "pathname" else "EPERM"
        assert confined.stdout.decode().split() == ["written", "0", "errors", refused], confined
        time.sleep(0.5)  # the service would run a line it got meanwhile
        assert list(out.iterdir()) == []
    finally:
        _stop(service)


INSIDE_ONCE = textwrap.dedent("""
    import socket, sys, threading
    path = sys.argv[1]
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(1)
    got = []
    def serve():
        c, _ = s.accept()
        got.append(c.recv(16))
        c.close()
    t = threading.Thread(target=serve)
    t.start()
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    c.sendall(b"hello")
    t.join()
    print("got", got[0].decode() or "(nothing)")
""")


def test_listener_inside_sees_only_the_target_connection(who):
    # The connection judged is the one handed to the target: a server
    # inside that accepts once gets the target's bytes, not an empty probe.
    proj = who.mkdir(who.base / "proj")
    script = who.write(who.base / "once.py", INSIDE_ONCE)
    control = who.run([PY, script, proj / "once.sock"])
    assert control.stdout.decode().split() == ["got", "hello"], control
    (proj / "once.sock").unlink()
    confined = who.peninsula("run", "--write", proj, "--", PY, script, proj / "once.sock")
    assert confined.stdout.decode().split() == ["got", "hello"], confined


# What a client sees of its socket after a judged connect: the same as
# without peninsula (the connection it holds is the supervisor's, put at
# its fd number with its flags and the options it had set).
FIDELITY = textwrap.dedent("""
    import errno, fcntl, os, socket, struct, sys
    path = sys.argv[1]
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(8)
    def show(name, f):
        try:
            print(name, f())
        except OSError as err:
            print(name, errno.errorcode[err.errno])
    for blocking, cloexec in ((True, False), (False, True)):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | (socket.SOCK_CLOEXEC if cloexec else 0))
        os.set_inheritable(c.fileno(), not cloexec)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 7, 0))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        c.setblocking(blocking)
        number = c.fileno()
        show("connect", lambda: c.connect(path))
        server, _ = s.accept()
        show("same fd", lambda: c.fileno() == number)
        show("cloexec", lambda: bool(fcntl.fcntl(number, fcntl.F_GETFD) & fcntl.FD_CLOEXEC))
        show("nonblock", lambda: bool(fcntl.fcntl(number, fcntl.F_GETFL) & os.O_NONBLOCK))
        show("sndbuf", lambda: c.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        show("rcvtimeo", lambda: struct.unpack("ll", c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)))
        show("passcred", lambda: c.getsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED))
        show("peer", lambda: c.getpeername() == path)
        show("again", lambda: c.connect(path))
        c.sendall(b"ping")
        show("server got", lambda: server.recv(4))
        c.close()
        server.close()
    show("listener connect", lambda: s.connect(path))
""")


def test_judged_connect_keeps_the_clients_socket_as_it_was(who):
    proj = who.mkdir(who.base / "proj")
    script = who.write(who.base / "fidelity.py", FIDELITY)
    control = who.run([PY, script, proj / "f.sock"])
    (proj / "f.sock").unlink()
    confined = who.peninsula("run", "--write", proj, "--", PY, script, proj / "f.sock")
    assert control.returncode == 0 and "again EISCONN" in control.stdout.decode(), control
    assert confined.stdout.decode() == control.stdout.decode(), (control, confined)


ABSTRACT_INSIDE = textwrap.dedent("""
    import errno, socket, sys
    s = socket.socket(socket.AF_UNIX)
    s.bind("\\0" + sys.argv[1])
    s.listen(4)
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect("\\0" + sys.argv[1])
        print("connected")
    except OSError as err:
        print(errno.errorcode[err.errno])
""")


def test_abstract_name_in_a_new_network_namespace(who):
    # Known loss, documented: the supervisor cannot make its judged
    # connection in the run's new namespace, and must not look the name up
    # in its own (a listener outside, and whether it exists, are not the
    # target's to reach or learn). Without --unshare-net the same works.
    proj = who.mkdir(who.base / "proj")
    name = f"pt-{uuid.uuid4().hex[:8]}"
    outside = _start(who, [PY, "-c", SERVICE, "@" + name])  # the same name, in the host's namespace
    try:
        same = who.peninsula("run", "--write", proj, "--", PY, "-c", ABSTRACT_INSIDE, name + "-in")
        assert same.stdout.decode().split() == ["connected"], same
        unshared = who.peninsula("run", "--unshare-net", "--write", proj, "--", PY, "-c", ABSTRACT_INSIDE, name)
        assert unshared.stdout.decode().split() == ["ECONNREFUSED"], unshared
        assert b"denied" not in unshared.stderr, unshared
    finally:
        _stop(outside)
