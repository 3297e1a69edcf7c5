"""The user's own services, reached through sockets (issue 11, invariant 8).

Each service is started as the test identity OUTSIDE any sandbox, and each
route is first shown to work unconfined (the positive control), so no test
passes because the route was broken anyway. A confined process must then
be refused (EACCES, a notice) wherever the listener would act for it with
the user's full rights, and still reach the agents that only sign.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
import uuid

import pytest

from services import CLIENT, SERVICE

from .helpers import PY

def _start(who, argv, env=None, ready=b"ready"):
    proc = subprocess.Popen(who.prefix() + [str(a) for a in argv], env=who.env(env), cwd=str(who.base),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()
    assert line.startswith(ready), line
    return proc


def _stop(proc):
    proc.kill()
    proc.wait()


@pytest.fixture
def places(who):
    proj = who.mkdir(who.base / "proj")
    out = who.mkdir(who.base / "out")
    return proj, out


def _wait_for(path, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.05)
    return path.exists()


def test_service_that_runs_commands(who, places):
    proj, out = places
    sock = who.base / "svc.sock"
    service = _start(who, [PY, "-c", SERVICE, sock])
    try:
        control = who.run([PY, "-c", CLIENT, sock, f"touch {out}/control"])
        assert control.stdout.decode().split() == ["reply", "ran"], control
        assert (out / "control").exists()
        confined = who.peninsula("run", "--write", proj, "--", PY, "-c", CLIENT, sock, f"touch {out}/escaped")
        assert confined.stdout.decode().split() == ["errno", "EACCES"], confined
        err = confined.stderr.decode()
        assert f"denied connect of {sock}" in err and "python3" in err and "not in this confinement" in err, err
        time.sleep(0.3)
        assert not (out / "escaped").exists()
        # Relative to the target's cwd, and through a symlink in the project.
        os.symlink(sock, proj / "link")
        confined = who.peninsula("run", "--write", proj, "--", PY, "-c", CLIENT, "link", f"touch {out}/escaped",
                                 cwd=proj)
        assert confined.stdout.decode().split() == ["errno", "EACCES"], confined
        assert not (out / "escaped").exists()
    finally:
        _stop(service)


def test_abstract_service_stays_scoped(who, places):
    proj, out = places
    name = f"@pt-{uuid.uuid4().hex[:8]}"
    service = _start(who, [PY, "-c", SERVICE, name])
    try:
        control = who.run([PY, "-c", CLIENT, name, f"touch {out}/control"])
        assert control.stdout.decode().split() == ["reply", "ran"], control
        confined = who.peninsula("run", "--write", proj, "--", PY, "-c", CLIENT, name, f"touch {out}/escaped")
        assert confined.stdout.decode().split() == ["errno", "EPERM"], confined
        time.sleep(0.3)
        assert not (out / "escaped").exists()
    finally:
        _stop(service)


INSIDE = textwrap.dedent("""
    import os, socket, sys, threading
    path = sys.argv[1]
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(8)
    def serve():
        while True:
            c, _ = s.accept()
            c.sendall(b"inside\\n")
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    for blocking in (True, False):
        c = socket.socket(socket.AF_UNIX)
        c.setblocking(blocking)
        c.connect(path)
        c.setblocking(True)
        print("got", c.recv(16).decode().strip())
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind(path + ".dg")
    try:
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"x", path + ".dg")
        print("datagram sent")
    except OSError as err:
        print("datagram", err.errno)
""")


def test_listener_inside_the_confinement(who, places):
    proj, _ = places
    done = who.peninsula("run", "--write", proj, "--", PY, "-c", INSIDE, proj / "in.sock")
    lines = done.stdout.decode().splitlines()
    assert lines[:2] == ["got inside", "got inside"], done
    # A datagram's receiver cannot be named by the kernel: refused unless listed.
    assert lines[2] == "datagram 13", done
    assert "denied sendto" in done.stderr.decode()


def test_tmux_server_outside(who, places):
    proj, out = places
    if shutil.which("tmux") is None:
        pytest.skip("tmux not installed")
    sock = who.base / "tmux.sock"
    env = {"TERM": "xterm"}
    assert who.run(["tmux", "-S", sock, "new-session", "-d", "-s", "pt"], env=env).returncode == 0
    try:
        control = who.run(["tmux", "-S", sock, "new-window", f"touch {out}/control"], env=env)
        assert control.returncode == 0 and _wait_for(out / "control"), control
        confined = who.peninsula("run", "--write", proj, "--", "tmux", "-S", sock, "new-window",
                                 f"touch {out}/escaped", env=env)
        assert confined.returncode != 0
        assert f"denied connect of {sock}" in confined.stderr.decode()
        time.sleep(0.5)
        assert not (out / "escaped").exists()
    finally:
        who.run(["tmux", "-S", sock, "kill-server"], env=env)


def test_dbus_session_bus_outside(who, places):
    proj, _ = places
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus not installed")
    sock = who.base / "bus"
    daemon = _start(who, ["dbus-daemon", "--session", f"--address=unix:path={sock}", "--nofork", "--print-address"],
                    ready=f"unix:path={sock},guid=".encode())
    try:
        ask = ["dbus-send", f"--bus=unix:path={sock}", "--dest=org.freedesktop.DBus", "--print-reply",
               "/org/freedesktop/DBus", "org.freedesktop.DBus.ListNames"]
        control = who.run(ask)
        assert control.returncode == 0 and b"org.freedesktop.DBus" in control.stdout, control
        confined = who.peninsula("run", "--write", proj, "--", *ask)
        assert confined.returncode != 0, confined
        assert f"denied connect of {sock}" in confined.stderr.decode()
    finally:
        _stop(daemon)


@pytest.fixture
def agent_home(who):
    """A home of its own (its ~/.gnupg and keys), owned by the identity."""
    home = who.mkdir(who.base / "home")
    os.chmod(home, 0o700)
    return home


def test_ssh_agent_allowed_from_the_session_only(who, places, agent_home):
    proj, _ = places
    sock = who.base / "agent.sock"
    env = {"HOME": str(agent_home)}
    assert who.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", agent_home / "key"], env=env).returncode == 0
    agent = subprocess.Popen(who.prefix() + ["ssh-agent", "-D", "-a", str(sock)], env=who.env(env),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(sock)
        with_agent = {**env, "SSH_AUTH_SOCK": str(sock)}
        assert who.run(["ssh-add", "-q", agent_home / "key"], env=with_agent).returncode == 0
        control = who.run(["ssh-add", "-l"], env=with_agent)
        assert control.returncode == 0 and b"ED25519" in control.stdout, control
        confined = who.peninsula("run", "--write", proj, "--", "ssh-add", "-l", env=with_agent)
        assert confined.returncode == 0 and b"ED25519" in confined.stdout, confined
        # The allowed agent is the one the session started with, not one a
        # confined process names.
        renamed = who.peninsula("run", "--write", proj, "--", "sh", "-c", f"SSH_AUTH_SOCK={sock} ssh-add -l", env=env)
        assert renamed.returncode != 0 and b"ED25519" not in renamed.stdout, renamed
        assert f"denied connect of {sock}" in renamed.stderr.decode()
    finally:
        _stop(agent)


def test_gpg_agent_signs_a_commit(who, places, agent_home):
    proj, _ = places
    env = {"HOME": str(agent_home), "GIT_CONFIG_NOSYSTEM": "1"}
    gen = who.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Pen Test <pt@example.org>",
                   "ed25519", "sign", "never"], env=env)
    assert gen.returncode == 0, gen.stderr
    socket_path = agent_home / ".gnupg" / "S.gpg-agent"
    assert socket_path.exists()  # gpg left its agent running, outside any sandbox
    # gpg takes lock files in ~/.gnupg even to read its keyring, and
    # ~/.gnupg is never writable in a sandbox (a separate matter from the
    # agent's socket): a reader that takes no locks.
    who.write(agent_home / ".gnupg" / "gpg.conf", "lock-never\n")
    repo = who.mkdir(proj / "repo")
    git = ["git", "-c", "user.name=Pen", "-c", "user.email=pt@example.org", "-c", "user.signingkey=pt@example.org"]
    assert who.run(["git", "init", "-q", repo], env=env).returncode == 0
    who.write(repo / "f", "x\n")
    assert who.run([*git, "-C", repo, "add", "f"], env=env).returncode == 0
    control = who.run([*git, "-C", repo, "commit", "-q", "-S", "-m", "control"], env=env)
    assert control.returncode == 0, control.stderr
    confined = who.peninsula("run", "--write", proj, "--", *git, "-C", repo, "commit", "-q", "--allow-empty",
                             "-S", "-m", "confined", env=env)
    assert confined.returncode == 0, confined.stderr
    shown = who.run(["git", "-C", repo, "log", "--show-signature", "-1"], env=env)
    assert b"Good signature" in shown.stdout + shown.stderr, shown
    who.run(["gpgconf", "--kill", "gpg-agent"], env=env)


# The attacker: its own listener (allowed), and a name that another
# process flips between it and the outside service. One thread also flips
# the address in memory while another is inside connect().
ATTACKER = textwrap.dedent("""
    import ctypes, errno, os, socket, struct, sys, threading, time
    ok, evil, link, out, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    s = socket.socket(socket.AF_UNIX)
    s.bind(ok)
    s.listen(64)
    def serve():
        while True:
            c, _ = s.accept()
            c.close()
    threading.Thread(target=serve, daemon=True).start()
    libc = ctypes.CDLL(None, use_errno=True)
    def addr(path):
        raw = struct.pack("H", socket.AF_UNIX) + path.encode()
        return raw + b"\\0" * (110 - len(raw))
    A, B = addr(ok), addr(evil)
    buf = ctypes.create_string_buffer(A, 110)
    stop = False
    def flip():
        while not stop:
            ctypes.memmove(buf, B, 110)
            ctypes.memmove(buf, A, 110)
    threading.Thread(target=flip, daemon=True).start()
    counts = {}
    for i in range(rounds):
        for how in ("memory", "name"):
            c = socket.socket(socket.AF_UNIX)
            if how == "memory":
                r = libc.connect(c.fileno(), buf, 110)
                e = ctypes.get_errno() if r else 0
            else:
                try:
                    c.connect(link)
                    e = 0
                except OSError as err:
                    e = err.errno
            if e == 0:
                try:
                    c.sendall(f"touch {out}/escaped-{how}-{i}\\n".encode())
                except OSError:
                    pass
            key = how + " " + errno.errorcode.get(e, "OK")
            counts[key] = counts.get(key, 0) + 1
            c.close()
    stop = True
    for key in sorted(counts):
        print(key, counts[key])
""")

SWAPPER = textwrap.dedent("""
    import os, sys, time
    a, b, link = sys.argv[1], sys.argv[2], sys.argv[3]
    for target, name in ((a, link + ".a"), (b, link + ".b")):
        if os.path.lexists(name):
            os.unlink(name)
        os.symlink(target, name)
    print("ready", flush=True)
    while True:
        os.symlink(a, link + ".t"); os.rename(link + ".t", link)
        os.symlink(b, link + ".t"); os.rename(link + ".t", link)
""")


def test_swapped_path_and_address_never_escape(who, places):
    proj, out = places
    evil = who.base / "svc.sock"
    ok, link = proj / "ok.sock", proj / "link"
    service = _start(who, [PY, "-c", SERVICE, evil])
    # The name is flipped by a process outside the sandbox (the
    # supervisor serialises a confined renamer's requests with ours).
    swapper = _start(who, [PY, "-c", SWAPPER, ok, evil, link])
    try:
        control = who.run([PY, "-c", CLIENT, evil, f"touch {out}/control"])
        assert control.stdout.decode().split() == ["reply", "ran"], control
        done = who.peninsula("run", "--quiet", "--write", proj, "--", PY, "-c", ATTACKER, ok, evil, link, out, "100",
                             timeout=180)
        assert done.returncode == 0, done.stderr
        counts = dict(line.rsplit(" ", 1) for line in done.stdout.decode().splitlines())
        time.sleep(0.5)
        assert sorted(p.name for p in out.iterdir()) == ["control"], counts
        # Both outcomes were seen on both routes: the race was really run.
        for how in ("memory", "name"):
            assert int(counts.get(f"{how} OK", 0)) > 0 and int(counts.get(f"{how} EACCES", 0)) > 0, counts
    finally:
        _stop(swapper)
        _stop(service)


# A listener inside that exits, and an outside one that takes its name.
REPLACED = textwrap.dedent("""
    import errno, os, socket, sys, time
    path = sys.argv[1]
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(8)
    def attempt():
        c = socket.socket(socket.AF_UNIX)
        try:
            c.connect(path)
            return "OK"
        except OSError as err:
            return errno.errorcode[err.errno]
        finally:
            c.close()
    print("inside", attempt())
    s.close()
    os.unlink(path)
    open(path + ".gone", "w").close()  # the taker's cue: a poll could miss the socket's short life
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    print("outside", attempt())
""")

TAKER = textwrap.dedent("""
    import os, socket, sys, time
    path = sys.argv[1]
    print("ready", flush=True)
    while not os.path.exists(path + ".gone"):
        time.sleep(0.01)
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(8)
    time.sleep(30)
""")


def test_listener_replaced_is_judged_afresh(who, places):
    proj, _ = places
    path = proj / "svc.sock"
    taker = _start(who, [PY, "-c", TAKER, path])
    try:
        done = who.peninsula("run", "--write", proj, "--", PY, "-c", REPLACED, path)
        assert done.stdout.decode().splitlines() == ["inside OK", "outside EACCES"], done
    finally:
        _stop(taker)


def test_allow_socket_lets_the_user_choose(who, places):
    proj, out = places
    sock = who.base / "svc.sock"
    service = _start(who, [PY, "-c", SERVICE, sock])
    try:
        allowed = who.peninsula("run", "--allow-socket", who.base / "svc.*", "--write", proj, "--",
                                PY, "-c", CLIENT, sock, f"touch {out}/allowed")
        assert allowed.stdout.decode().split() == ["reply", "ran"], allowed
        assert _wait_for(out / "allowed")
        refused = who.peninsula("run", "--write", proj, "--", PY, "-c", CLIENT, sock, f"touch {out}/refused")
        assert refused.stdout.decode().split() == ["errno", "EACCES"], refused
        assert f"allow with --allow-socket {sock}" in refused.stderr.decode()
    finally:
        _stop(service)


def test_runtime_dir_is_not_writable_by_default(who, places):
    """The user's service sockets live in $XDG_RUNTIME_DIR: a command that
    could replace them could answer unconfined programs in their place."""
    proj, _ = places
    runtime = who.mkdir(who.base / "runtime")
    os.chmod(runtime, 0o700)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    control = who.run(["sh", "-c", f"touch {runtime}/control"], env=env)
    assert control.returncode == 0 and (runtime / "control").exists()
    refused = who.peninsula("run", "--", "sh", "-c", f"touch {runtime}/bus", env=env, cwd=proj)
    assert refused.returncode != 0 and not (runtime / "bus").exists(), refused
    allowed = who.peninsula("run", "--write", runtime, "--", "sh", "-c", f"touch {runtime}/other", env=env, cwd=proj)
    assert allowed.returncode == 0 and (runtime / "other").exists(), allowed
    # the session bus's name stays protected even then (defaults.PROTECTED_IN_RUNTIME)
    refused = who.peninsula("run", "--write", runtime, "--", "sh", "-c", f"touch {runtime}/bus", env=env, cwd=proj)
    assert refused.returncode != 0 and not (runtime / "bus").exists(), refused


def test_screen_session_outside(who, places):
    proj, out = places
    if shutil.which("screen") is None:
        pytest.skip("screen not installed")
    screendir = who.mkdir(who.base / "screens")
    os.chmod(screendir, 0o700)
    env = {"SCREENDIR": str(screendir), "TERM": "xterm"}
    assert who.run(["screen", "-dmS", "pt", "sh"], env=env).returncode == 0
    try:
        deadline = time.monotonic() + 5
        while not list(screendir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        control = who.run(["screen", "-S", "pt", "-X", "stuff", f"touch {out}/control\n"], env=env)
        assert control.returncode == 0 and _wait_for(out / "control"), control
        # (a run points SCREENDIR at its project's own directory: the attacker names the user's)
        confined = who.peninsula("run", "--write", proj, "--", "env", f"SCREENDIR={screendir}", "screen", "-S", "pt",
                                 "-X", "stuff", f"touch {out}/escaped\n", env=env)
        assert confined.returncode != 0 and "denied connect of" in confined.stderr.decode(), confined
        time.sleep(0.5)
        assert not (out / "escaped").exists()
    finally:
        who.run(["screen", "-S", "pt", "-X", "quit"], env=env)


ERRNOS = textwrap.dedent("""
    import ctypes, errno, json, os, socket
    libc = ctypes.CDLL(None, use_errno=True)
    def e(r):
        return errno.errorcode.get(ctypes.get_errno()) if r < 0 else "OK"
    f = os.open("/", os.O_RDONLY)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s = socket.socket(socket.AF_UNIX)
    t = socket.socket()
    addr = b"\\x01\\x00/x\\x00"
    out = {
        "connect ebadf": e(libc.connect(999, addr, 5)),
        "connect notsock, bad length": e(libc.connect(f, addr, 500)),
        "connect notsock": e(libc.connect(f, addr, 5)),
        "connect efault": e(libc.connect(c.fileno(), ctypes.c_void_p(8), 16)),
        "connect no such path": e(libc.connect(s.fileno(), b"\\x01\\x00/nonexistent/x\\x00", 19)),
        "connect a directory": e(libc.connect(s.fileno(), b"\\x01\\x00/\\x00", 4)),
        "connect unnamed": e(libc.connect(s.fileno(), b"\\x01\\x00", 2)),
        "connect inet address on unix": e(libc.connect(c.fileno(), b"\\x02\\x00\\x00\\x50\\x7f\\x00\\x00\\x01" + bytes(8), 16)),
        "connect unspec": e(libc.connect(c.fileno(), b"\\x00\\x00", 2)),
        "sendto notsock, bad length": e(libc.sendto(f, b"x", 1, 0, addr, 500)),
        "sendto bad length": e(libc.sendto(c.fileno(), b"x", 1, 0, addr, 500)),
        "sendto no such path": e(libc.sendto(c.fileno(), b"x", 1, 0, b"\\x01\\x00/nonexistent/x\\x00", 19)),
        "sendto on a stream socket": e(libc.sendto(s.fileno(), b"x", 1, 0, addr, 5)),
        "tcp refused": e(libc.connect(t.fileno(), b"\\x02\\x00\\x00\\x01\\x7f\\x00\\x00\\x01" + bytes(8), 16)),
    }
    print(json.dumps(out, sort_keys=True))
""")


def test_errnos_are_the_kernels(who, places):
    proj, _ = places
    plain = who.run([PY, "-c", ERRNOS])
    confined = who.peninsula("run", "--quiet", "--write", proj, "--", PY, "-c", ERRNOS)
    assert plain.returncode == 0 and confined.returncode == 0, (plain, confined)
    assert confined.stdout == plain.stdout, (plain.stdout, confined.stdout)


# A connect that waits (a full backlog) must not hold up the supervisor:
# the other thread's writes go on meanwhile.
WAITING = textwrap.dedent("""
    import os, socket, sys, threading, time
    path, proj = sys.argv[1], sys.argv[2]
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(0)
    first = socket.socket(socket.AF_UNIX)
    first.connect(path)  # the backlog is now full: the next connect waits
    done = []
    def wait():
        c = socket.socket(socket.AF_UNIX)
        c.connect(path)
        done.append(time.monotonic())
    threading.Thread(target=wait, daemon=True).start()
    time.sleep(0.5)
    t = time.monotonic()
    for i in range(20):
        with open(os.path.join(proj, f"w{i}"), "w") as f:
            f.write("x")
    print("writes while waiting", len(done) == 0, round(time.monotonic() - t, 2) < 5)
    s.accept()[0].close()
    s.accept()[0].close()
    deadline = time.monotonic() + 5
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    print("connected after accept", bool(done))
""")


def test_waiting_connect_does_not_stall_the_supervisor(who, places):
    proj, _ = places
    done = who.peninsula("run", "--write", proj, "--", PY, "-c", WAITING, proj / "wait.sock", proj, timeout=60)
    assert done.stdout.decode().splitlines() == ["writes while waiting True True", "connected after accept True"], done
