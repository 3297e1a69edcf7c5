"""This host's TCP/UDP services (issue 11, invariant 8): a listener outside
the sandbox on 127.0.0.1, 0.0.0.0 or the host's own address that runs what
it receives is an escape, exactly as a unix socket service is.

Each service is started as the test identity OUTSIDE any sandbox and each
route is first shown to work unconfined (the positive control). A confined
process must then be refused with EACCES and a notice; a listener the
confinement started itself stays reachable; a connect that leaves this
host is made as given.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
import uuid

import pytest

from loopback_services import CLIENT, start_service, start_socat, stop, wait_for

from .helpers import PY


@pytest.fixture
def places(who):
    return who.mkdir(who.base / "proj"), who.mkdir(who.base / "out")


def _outside(who):
    return who.prefix(), who.env(), str(who.base)


def _host_address() -> str | None:
    """A non-loopback address of this host, if it has one."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        return line.split()[3].split("/")[0]
    return None


# argv: port, directory for proof files. Tries each way of naming this host.
ADDRESSES = textwrap.dedent("""
    import errno, socket, sys
    port, out = int(sys.argv[1]), sys.argv[2]
    for i, (fam, host) in enumerate([(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::ffff:127.0.0.1"),
                                     (socket.AF_INET, "0.0.0.0"), (socket.AF_INET, "127.0.0.1")]):
        s = socket.socket(fam)
        s.setblocking(i != 3)  # the last one non-blocking
        try:
            try:
                s.connect((host, port))
            except BlockingIOError:
                import select  # EINPROGRESS: wait for the outcome
                select.select([], [s], [], 5)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise OSError(err, "connect")
            s.setblocking(True)
            s.sendall(f"touch {out}/escaped-{i}\\n".encode())
            s.close()
            print(host, "sent")
        except OSError as err:
            print(host, errno.errorcode[err.errno])
""")


def test_socat_shell_outside_is_refused(who, places):
    proj, out = places
    socat, port = start_socat(*_outside(who))
    try:
        control = who.run([PY, "-c", CLIENT, "127.0.0.1", port, "tcp", f"touch {out}/control"])
        assert control.stdout.split() == [b"sent"], control
        assert wait_for(out / "control")
        confined = who.peninsula("run", "--write", proj, "--", PY, "-c", ADDRESSES, port, out)
        lines = confined.stdout.decode().splitlines()
        assert lines == ["127.0.0.1 EACCES", "::ffff:127.0.0.1 EACCES", "0.0.0.0 EACCES", "127.0.0.1 EACCES"], confined
        err = confined.stderr.decode()
        assert f"denied connect of 127.0.0.1:{port} (tcp)" in err and "python3" in err, err
        assert f"allow with --allow-loopback {port}" in err, err
        # The allow-list: the same connect, allowed by name.
        allowed = who.peninsula("run", "--write", proj, "--allow-loopback", port, "--",
                                PY, "-c", CLIENT, "127.0.0.1", port, "tcp", f"touch {out}/allowed")
        assert allowed.stdout.split() == [b"sent"], allowed
        assert wait_for(out / "allowed")
        time.sleep(0.3)
        assert not list(out.glob("escaped-*"))
    finally:
        stop(socat)


def test_host_address_and_udp_outside_are_refused(who, places):
    proj, out = places
    host = _host_address()
    tcp, tcp_port = start_service(*_outside(who), PY, "0.0.0.0", "tcp")
    udp, udp_port = start_service(*_outside(who), PY, "127.0.0.1", "udp")
    try:
        routes = [("127.0.0.1", udp_port, "udp-sendto"), ("127.0.0.1", udp_port, "udp-connect")]
        if host is not None:  # a listener on 0.0.0.0 is reached through the host's own address too
            routes.append((host, tcp_port, "tcp"))
        for i, (addr, port, kind) in enumerate(routes):
            control = who.run([PY, "-c", CLIENT, addr, port, kind, f"touch {out}/control-{i}"])
            assert control.stdout.split() == [b"sent"], control
            assert wait_for(out / f"control-{i}"), (addr, kind)
            confined = who.peninsula("run", "--write", proj, "--", PY, "-c", CLIENT, addr, port, kind, f"touch {out}/escaped-{i}")
            assert confined.stdout.split() == [b"errno", b"EACCES"], (kind, confined)
            assert f"denied connect of {addr}:{port}" in confined.stderr.decode() or \
                f"denied sendto of {addr}:{port}" in confined.stderr.decode(), confined
        time.sleep(0.3)
        assert not list(out.glob("escaped-*"))
    finally:
        stop(tcp)
        stop(udp)


# A dev server and its clients in one confinement: a thread, a forked
# worker that accepts, blocking and non-blocking connects, UDP.
INSIDE = textwrap.dedent("""
    import os, select, socket, threading
    srv = socket.socket(socket.AF_INET6)
    srv.bind(("::", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    def serve():
        while True:
            c, _ = srv.accept()
            c.sendall(b"inside")
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    for host, blocking in (("127.0.0.1", True), ("::1", True), ("127.0.0.1", False)):
        c = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        c.setblocking(blocking)
        try:
            c.connect((host, port))
        except BlockingIOError:
            select.select([], [c], [], 5)
        c.setblocking(True)
        print("tcp", host, c.recv(16).decode())
    worker = socket.socket()
    worker.bind(("127.0.0.1", 0))
    worker.listen(4)
    wport = worker.getsockname()[1]
    if os.fork() == 0:
        c, _ = worker.accept()
        c.sendall(b"forked")
        os._exit(0)
    worker.close()  # only the child holds it now
    print("forked", socket.create_connection(("127.0.0.1", wport)).recv(16).decode())
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("127.0.0.1", 0))
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", r.getsockname())
    print("udp", r.recv(4).decode())
""")


def test_listener_inside_the_confinement(who, places):
    proj, _ = places
    confined = who.peninsula("run", "--write", proj, "--", PY, "-c", INSIDE)
    assert confined.stdout.decode().splitlines() == [
        "tcp 127.0.0.1 inside", "tcp ::1 inside", "tcp 127.0.0.1 inside", "forked forked", "udp x"], confined
    assert b"denied" not in confined.stderr, confined


ROUNDS = 100

# argv: outside port, proof dir, rounds, proof name. A listener of its own (allowed),
# and a thread that rewrites the port in the sockaddr between its own and
# the outside one while the main thread connects; a third spins on write.
# Prints how many connects ended at the outside port and how many writes
# got anywhere.
RACER = textwrap.dedent("""
    import ctypes, os, socket, struct, sys, threading
    bad, out, rounds, tag = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(256)
    good = srv.getsockname()[1]
    def drain():
        while True:
            srv.accept()[0].close()
    threading.Thread(target=drain, daemon=True).start()
    libc = ctypes.CDLL(None, use_errno=True)
    addr = ctypes.create_string_buffer(struct.pack("!HH4s8x", 0, good, socket.inet_aton("127.0.0.1")), 16)
    struct.pack_into("H", addr, 0, socket.AF_INET)
    ports = [struct.pack("!H", good), struct.pack("!H", bad)]
    stop = threading.Event()
    def flip():
        i = 0
        while not stop.is_set():
            ctypes.memmove(ctypes.addressof(addr) + 2, ports[i & 1], 2)
            i += 1
    threading.Thread(target=flip, daemon=True).start()
    outside = 0
    for i in range(rounds):
        s = socket.socket()
        fd = s.fileno()
        payload = f"touch {out}/{tag}-{i}\\n".encode()
        done = threading.Event()
        def spin():
            while not done.is_set():
                try:
                    os.write(fd, payload)
                except OSError:
                    pass
        t = threading.Thread(target=spin)
        t.start()
        rc = libc.connect(fd, addr, 16)
        done.set()
        t.join()
        try:
            if rc == 0 and s.getpeername()[1] == bad:
                outside += 1
        except OSError:
            pass  # reset by the peer already (ours closes at once)
        s.close()
    stop.set()
    print("outside", outside, flush=True)
""")


def test_address_swap_race(who, places):
    proj, out = places
    socat, port = start_socat(*_outside(who))
    try:
        # Unconfined, the swap reaches the outside shell.
        control = who.run([PY, "-c", RACER, port, out, 40, "control"])
        assert int(control.stdout.split()[1]) > 0, control
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not list(out.glob("control-*")):
            time.sleep(0.05)
        assert list(out.glob("control-*")), control
        confined = who.peninsula("run", "--write", proj, "--", PY, "-c", RACER, port, out, ROUNDS, "escaped", timeout=300)
        assert confined.stdout.split() == [b"outside", b"0"], confined
        time.sleep(0.5)
        assert not list(out.glob("escaped-*"))
    finally:
        stop(socat)


@pytest.fixture
def other_host(who):
    """A listener on another host: a network namespace joined by a veth
    pair (made as root; the service in it runs as the test identity)."""
    if os.geteuid() != 0:
        pytest.skip("making a network namespace needs root")
    tag = uuid.uuid4().hex[:6]
    ns, here, there = f"pt-lb-{tag}", f"ptlb{tag}a", f"ptlb{tag}b"
    net = 18 + int(tag[:2], 16) % 2  # 198.18.0.0/15 is for benchmarking networks
    mine, theirs = f"198.{net}.{int(tag[2:4], 16)}.1", f"198.{net}.{int(tag[2:4], 16)}.2"
    steps = [["ip", "netns", "add", ns], ["ip", "link", "add", here, "type", "veth", "peer", "name", there],
             ["ip", "link", "set", there, "netns", ns], ["ip", "addr", "add", mine + "/30", "dev", here],
             ["ip", "link", "set", here, "up"], ["ip", "-n", ns, "addr", "add", theirs + "/30", "dev", there],
             ["ip", "-n", ns, "link", "set", there, "up"]]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)
        yield ["ip", "netns", "exec", ns], theirs
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_other_host_is_reached_as_given(who, places, other_host):
    proj, out = places
    enter, address = other_host
    service, port = start_service(enter + who.prefix(), who.env(), str(who.base), PY, address, "tcp")
    try:
        control = who.run([PY, "-c", CLIENT, address, port, "tcp", f"touch {out}/control"])
        assert control.stdout.split() == [b"sent"], control
        confined = who.peninsula("run", "--write", proj, "--", PY, "-c", CLIENT, address, port, "tcp", f"touch {out}/remote")
        assert confined.stdout.split() == [b"sent"], confined
        assert b"denied" not in confined.stderr, confined
        assert wait_for(out / "remote")
    finally:
        stop(service)


# argv: port. Accepts one connection, stops listening at once (the port is
# free again), then runs what the connection sends: the shape of `nc -l`.
ONE_SHOT = textwrap.dedent("""
    import socket, subprocess, sys
    s = socket.socket()
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(1)
    print("ready", flush=True)
    c, _ = s.accept()
    s.close()
    data = b""
    while not data.endswith(b"\\n"):
        chunk = c.recv(4096)
        if not chunk:
            break
        data += chunk
    if data.endswith(b"\\n"):
        subprocess.run(["sh", "-c", data.decode()])
""")

# argv: port, command. Takes the port for a listener of its own the moment
# it is free (so a judgement made after the outside listener closed would
# see only this one), while the main thread connects and sends.
REBIND = textwrap.dedent("""
    import errno, socket, sys, threading
    port, cmd = int(sys.argv[1]), sys.argv[2].encode() + b"\\n"
    stop = threading.Event()
    def take():
        while not stop.is_set():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                s.listen(4)
                stop.wait()
                return
            except OSError:
                s.close()
    threading.Thread(target=take, daemon=True).start()
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", port))
        c.sendall(cmd)
        c.close()
        print("sent", flush=True)
    except OSError as err:
        print("errno", errno.errorcode[err.errno], flush=True)
    stop.set()
""")


def test_one_shot_listener_that_frees_its_port(who, places):
    proj, out = places
    from loopback_services import free_port

    port = free_port()
    control_svc = subprocess.Popen(who.prefix() + [PY, "-c", ONE_SHOT, str(port)], env=who.env(), cwd=str(who.base),
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert control_svc.stdout.readline().strip() == b"ready"
        control = who.run([PY, "-c", REBIND, port, f"touch {out}/control"])
        assert control.stdout.split() == [b"sent"], control
        assert wait_for(out / "control")
    finally:
        stop(control_svc)
    service = subprocess.Popen(who.prefix() + [PY, "-c", ONE_SHOT, str(port)], env=who.env(), cwd=str(who.base),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert service.stdout.readline().strip() == b"ready"
        confined = who.peninsula("run", "--write", proj, "--", PY, "-c", REBIND, port, f"touch {out}/escaped")
        assert confined.stdout.split() == [b"errno", b"EACCES"], confined
        time.sleep(0.3)
        assert not (out / "escaped").exists()
    finally:
        stop(service)
