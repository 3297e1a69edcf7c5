"""bind() of a confined process (issue: bind was not trapped): a unix
socket's name is a file made, judged like mknod(S_IFSOCK) of that path,
and made in the directory judged however the path is swapped meanwhile.

Every refusal has its positive control: the same bind works unconfined.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import textwrap
import uuid

import pytest

from .helpers import PY

# argv: one path per bind; prints "<path> ok <getsockname>" or "<path> <ERRNO>".
BINDER = textwrap.dedent("""
    import errno, socket, sys
    for path in sys.argv[1:]:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(path)
            print(path, "ok", s.getsockname(), flush=True)
        except OSError as err:
            print(path, errno.errorcode[err.errno], flush=True)
""")


@pytest.fixture
def places(who):
    proj = who.mkdir(who.base / "proj")
    out = who.mkdir(who.base / "out")
    gnupg = who.home / ".gnupg"
    made = not gnupg.exists()
    if made:
        who.mkdir(gnupg)
        os.chmod(gnupg, 0o700)
    # A directory of our own beneath the protected ~/.gnupg: the real one's
    # contents are never touched.
    protected = who.mkdir(gnupg / f"pt-bind-{uuid.uuid4().hex[:8]}")
    yield proj, out, protected
    shutil.rmtree(protected, ignore_errors=True)
    if made:
        shutil.rmtree(gnupg, ignore_errors=True)


def _confined(who, proj, *argv, **kw):
    return who.peninsula("run", "--write", proj, "--", *argv, cwd=kw.pop("cwd", proj), **kw)


def test_refused_at_a_protected_name_and_outside_the_roots(who, places):
    proj, out, protected = places
    targets = [str(protected / "S.gpg-agent"), str(out / "sock")]
    control = who.run([PY, "-c", BINDER, *targets])
    assert [line.split()[1] for line in control.stdout.decode().splitlines()] == ["ok", "ok"], control
    for path in targets:
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        os.unlink(path)
    confined = _confined(who, proj, PY, "-c", BINDER, *targets)
    assert [line.split()[1] for line in confined.stdout.decode().splitlines()] == ["EACCES", "EACCES"], confined
    err = confined.stderr.decode()
    assert f"denied bind of {targets[0]}" in err and "it is protected" in err, err
    assert f"denied bind of {targets[1]}" in err and "outside every writable root" in err, err
    assert not os.listdir(protected) and not os.listdir(out)


SERVER = textwrap.dedent("""
    import os, socket, socketserver, sys, threading
    path = sys.argv[1]
    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"echo " + self.rfile.readline())
    server = socketserver.UnixStreamServer(path, Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)
    client.sendall(b"hello\\n")
    print(client.makefile("rb").readline().decode().strip(), oct(os.lstat(path).st_mode), os.lstat(path).st_uid,
          flush=True)
    server.shutdown()
""")


def test_a_server_inside_the_project_works(who, places):
    proj, _, _ = places
    sock = proj / "srv.sock"
    confined = _confined(who, proj, "sh", "-c", f'umask 027; exec {PY} -c "$0" {sock}', SERVER)
    assert confined.stdout.decode().split() == ["echo", "hello", "0o140750", str(who.uid)], confined
    os.unlink(sock)
    # socat, a listener bound by a relative name, with a client of its own.
    if shutil.which("socat") is None:
        pytest.skip("socat not installed")
    script = ("socat UNIX-LISTEN:rel.sock EXEC:'echo served' & "
              "for i in $(seq 50); do [ -S rel.sock ] && break; sleep 0.05; done; "
              "socat - UNIX-CONNECT:rel.sock </dev/null; wait")
    confined = _confined(who, proj, "sh", "-c", script, timeout=30)
    assert confined.stdout.decode().strip() == "served", confined


def test_errnos_match_the_kernel(who, places):
    proj, out, _ = places
    who.write(proj / "file")
    os.mkfifo(proj / "taken")
    os.mkfifo(out / "taken")
    cases = [
        str(proj / "taken"),  # EADDRINUSE
        str(out / "taken"),  # EADDRINUSE, not EACCES: the kernel finds the name first
        str(proj / "missing" / "s"),  # ENOENT
        str(out / "missing" / "s"),  # ENOENT
        str(proj / "file" / "s"),  # ENOTDIR
        str(proj) + "/",  # EADDRINUSE (the directory)
        str(proj / "slash") + "/",  # ENOENT
    ]
    extra = textwrap.dedent("""
        import ctypes, errno, os, socket, struct
        libc = ctypes.CDLL(None, use_errno=True)
        def raw(fd, addr, length):
            r = libc.bind(fd, addr, length)
            return "ok" if r == 0 else errno.errorcode[ctypes.get_errno()]
        s = socket.socket(socket.AF_UNIX)
        s.bind("bound.sock")
        again = struct.pack("H", socket.AF_UNIX) + b"again.sock\\0"
        print("bound", raw(s.fileno(), again, len(again)))  # EINVAL, and no node
        print("again-exists", os.path.lexists("again.sock"))
        fresh = socket.socket(socket.AF_UNIX)
        print("toolong", raw(fresh.fileno(), b"\\1\\0" + b"a" * 120, 122))  # EINVAL
        print("storage", raw(fresh.fileno(), b"\\1\\0" + b"a" * 200, 200))  # EINVAL
        print("family", raw(fresh.fileno(), struct.pack("H", socket.AF_INET) + b"x\\0", 4))  # EINVAL
        print("efault", raw(fresh.fileno(), ctypes.c_char_p(1), 20))
        print("notsock", raw(os.open("/dev/null", os.O_RDONLY), again, len(again)))
        print("badfd", raw(999, again, len(again)))
        print("empty", raw(fresh.fileno(), b"", 0))
        full = struct.pack("H", socket.AF_UNIX) + b"r" * 108  # fills sun_path, no NUL: relative to the cwd
        print("full", raw(fresh.fileno(), full, len(full)), os.path.exists("r" * 108))
    """)
    outputs = []
    for run in (who.run, lambda argv, cwd: _confined(who, proj, *argv, cwd=cwd)):
        first = run([PY, "-c", BINDER, *cases], cwd=proj)
        second = run([PY, "-c", extra], cwd=proj)
        outputs.append((first.stdout.decode(), second.stdout.decode()))
        for path in ("bound.sock", "again.sock", "r" * 108):
            if os.path.lexists(proj / path):
                os.unlink(proj / path)
    unconfined, confined = outputs
    assert [line.split()[-1] for line in unconfined[0].splitlines()] == [
        "EADDRINUSE", "EADDRINUSE", "ENOENT", "ENOENT", "ENOTDIR", "EADDRINUSE", "ENOENT"], unconfined
    assert "bound EINVAL" in unconfined[1] and "again-exists False" in unconfined[1], unconfined
    assert "full ok True" in unconfined[1], unconfined
    assert confined == unconfined


# argv: link, allowed dir, protected dir, rounds. Another process (a
# thread would mostly wait for the GIL) swaps link between the two dirs
# while this one binds link/S again and again; prints how many sockets
# appeared in the protected dir.
RACER = textwrap.dedent("""
    import os, signal, socket, sys
    link, good, bad, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    swapper = os.fork()
    if swapper == 0:
        tmp = link + ".new"
        while True:
            for where in (good, bad):
                try:
                    if os.path.lexists(tmp):  # left by a swapper killed in the middle
                        os.unlink(tmp)
                    os.symlink(where, tmp)
                    os.rename(tmp, link)
                except OSError:
                    pass
    planted = made = 0
    for i in range(rounds):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(os.path.join(link, "S.race"))
            made += 1
        except OSError:
            pass
        s.close()
        for where in (good, bad):
            try:
                os.unlink(os.path.join(where, "S.race"))
                planted += where == bad
            except OSError:
                pass
    os.kill(swapper, signal.SIGKILL)
    os.waitpid(swapper, 0)
    print("planted", planted, "made", made, flush=True)
""")


@pytest.mark.parametrize("way", ["as given", "bare name"])
def test_a_swapped_parent_never_gets_the_socket(who, places, way):
    """Both ways of binding (bind.py): the program's string under a Landlock
    bound, and, with something protected beneath the allowed dir, the bare
    name from the pinned parent."""
    proj, _, protected = places
    good = who.mkdir(proj / "a")
    link = proj / "link"
    extra = ["--protect", str(good / "keep")] if way == "bare name" else []
    # Positive control: unconfined, the same race plants sockets in the
    # protected directory.
    control = who.run([PY, "-c", RACER, link, good, protected, 3000], cwd=proj)  # fast unconfined: more rounds
    words = control.stdout.decode().split()
    assert words[0] == "planted" and int(words[1]) > 0, control
    confined = who.peninsula("run", "--write", proj, *extra, "--", PY, "-c", RACER, link, good, protected, 300,
                             cwd=proj, timeout=60)
    words = confined.stdout.decode().split()
    assert words[:2] == ["planted", "0"] and int(words[3]) > 0, confined  # some binds won, in the allowed dir
    assert not os.listdir(protected)


OTHERS = textwrap.dedent("""
    import os, socket
    a = socket.socket(socket.AF_UNIX)
    a.bind("\\0pt-bind-abstract-%d" % os.getpid())
    a.listen()
    c = socket.socket(socket.AF_UNIX)
    c.connect(a.getsockname())
    print("abstract", a.getsockname() == b"\\0pt-bind-abstract-%d" % os.getpid())
    auto = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    auto.bind("")
    name = auto.getsockname()
    print("autobind", name[:1] == b"\\0" and len(name) == 6)
    t = socket.socket()
    t.bind(("127.0.0.1", 0))
    t.listen()
    print("tcp", t.getsockname()[1] > 0)
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.bind(("::1", 0))
    print("udp6", u.getsockname()[1] > 0)
    n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    n.bind((0, 0))
    print("netlink", n.getsockname()[0] != 0)
    print("nodes", sorted(os.listdir(".")))
""")


def test_abstract_autobind_and_inet_binds_are_unaffected(who, places):
    proj, _, _ = places
    control = who.run([PY, "-c", OTHERS], cwd=proj)
    confined = _confined(who, proj, PY, "-c", OTHERS)
    assert control.returncode == 0 and "False" not in control.stdout.decode(), control
    assert confined.stdout == control.stdout, (control, confined)
    assert b"denied" not in confined.stderr, confined


NAMES = textwrap.dedent("""
    import socket, sys
    for path in sys.argv[1:]:
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        print(s.getsockname())
""")


def test_the_socket_keeps_its_name_unless_something_is_protected_beneath(who, places):
    proj, _, _ = places
    sub = who.mkdir(proj / "sub")
    paths = [str(sub / "abs.sock"), "sub/rel.sock"]
    confined = _confined(who, proj, PY, "-c", NAMES, *paths)
    assert confined.stdout.decode().split() == paths, confined
    # A protected path beneath the directory: the bare name (the cost).
    for path in paths:
        os.unlink(proj / path)
    confined = who.peninsula("run", "--write", proj, "--protect", str(sub / "keep"), "--", PY, "-c", NAMES, *paths,
                             cwd=proj)
    assert confined.stdout.decode().split() == ["abs.sock", "rel.sock"], confined
    assert all(stat.S_ISSOCK(os.lstat(proj / path).st_mode) for path in paths)
