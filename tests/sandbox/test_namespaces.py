"""--unshare-net/-pid/-ipc/-uts: each isolates what it says, paths keep
their meaning for the supervisor, files belong to the real user, and a
namespace the kernel refuses is an error (125), never silently skipped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from .helpers import PY, run_with_report

CONNECT = textwrap.dedent("""
    import socket, sys
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
        print("connected")
    except OSError as err:
        print("refused", err.errno)
""")

LOOPBACK_INSIDE = textwrap.dedent("""
    import socket
    server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
    client = socket.create_connection(server.getsockname(), timeout=5)
    conn, _ = server.accept(); client.sendall(b"ping"); print(conn.recv(4).decode())
""")


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def test_unshare_net_cuts_off_the_host_network(who, listener):
    project = who.mkdir(who.base / "p")
    # (--allow-loopback: the listener is outside the sandbox, see test_loopback.py)
    free = who.peninsula("run", "--allow-loopback", listener, "--", PY, "-c", CONNECT, str(listener), cwd=project)
    assert free.returncode == 0 and b"connected" in free.stdout, free.stderr
    cut = who.peninsula("run", "--unshare-net", "--allow-loopback", listener, "--", PY, "-c", CONNECT, str(listener), cwd=project)
    assert cut.returncode == 0, cut.stderr
    assert b"refused" in cut.stdout  # the host's 127.0.0.1 is not there


def test_unshare_net_has_a_working_loopback(who):
    project = who.mkdir(who.base / "p")
    proc = who.peninsula("run", "--unshare-net", "--", PY, "-c", LOOPBACK_INSIDE, cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == b"ping"


def test_unshare_pid_has_its_own_proc(who):
    project = who.mkdir(who.base / "p")
    show = ["sh", "-c", "echo pid=$$; ls /proc | grep -c '^[0-9]'"]
    free = who.peninsula("run", "--", *show, cwd=project)
    assert int(free.stdout.split(b"pid=")[1].split()[0]) > 2
    inside = who.peninsula("run", "--unshare-pid", "--", *show, cwd=project)
    assert inside.returncode == 0, inside.stderr
    pid, count = inside.stdout.split(b"pid=")[1].split()
    assert pid == b"2"  # pid 1 is peninsula's init of the namespace
    assert int(count) <= 4  # init, sh, ls, grep: nothing of the host


def test_unshare_pid_keeps_paths_ownership_and_confinement(who):
    """The supervisor resolves in its own mount namespace: relative and
    absolute writes mean the same inside, created files belong to the real
    user, and writes outside the project are still refused."""
    project = who.mkdir(who.base / "p")
    outside = who.mkdir(who.base / "outside")
    script = f"mkdir d && echo hi > d/f && echo x > {project}/abs && ln -s f d/l && echo no > {outside}/x; echo rc=$?"
    proc = who.peninsula("run", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--",
                         "sh", "-c", script, cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert b"rc=2" in proc.stdout
    assert not (outside / "x").exists()
    assert f"denied open of {outside}/x".encode() in proc.stderr
    for path in (project / "d", project / "d" / "f", project / "abs"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (who.uid, who.gid), path
    assert (project / "d" / "f").read_text() == "hi\n"


def test_supervisor_switches_credentials_inside_namespaces(root):
    """As root, a command that drops to another uid inside the namespaces
    still gets its files created with that uid (the supervisor reads the
    real ids from /proc in its own namespace)."""
    project = root.mkdir(root.base / "p")
    os.chmod(project, 0o777)
    for extra in ([], ["--unshare-pid", "--unshare-net"]):
        name = "f" + str(len(extra))
        proc = root.peninsula("run", *extra, "--", "setpriv", "--reuid=1001", "--regid=1001", "--clear-groups",
                              "sh", "-c", f"echo x > {name}", cwd=project)
        assert proc.returncode == 0, proc.stderr
        st = os.stat(project / name)
        assert (st.st_uid, st.st_gid) == (1001, 1001)


def test_user_namespace_maps_only_the_real_ids(user):
    project = user.mkdir(user.base / "p")
    proc = user.peninsula("run", "--unshare-net", "--", "sh", "-c", "id -u; id -g; cat /proc/self/uid_map", cwd=project)
    assert proc.returncode == 0, proc.stderr
    uid, gid, *mapping = proc.stdout.decode().split()
    assert (int(uid), int(gid)) == (user.uid, user.gid)
    assert mapping == [str(user.uid), str(user.uid), "1"]


def test_unshare_uts_and_hostname(who):
    project = who.mkdir(who.base / "p")
    host = socket.gethostname()
    free = who.peninsula("run", "--", "hostname", cwd=project)
    assert free.stdout.strip() == host.encode()
    inside = who.peninsula("run", "--unshare-uts", "--hostname", "sandbox-box", "--", "sh", "-c",
                           "hostname; hostname other 2>/dev/null; hostname", cwd=project)
    assert inside.returncode == 0, inside.stderr
    names = inside.stdout.split()
    assert names[0] == b"sandbox-box"
    assert socket.gethostname() == host  # the host's name never changed
    lonely = who.peninsula("run", "--hostname", "x", "--", "true", cwd=project)
    assert lonely.returncode == 125 and b"--unshare-uts" in lonely.stderr


def test_unshare_ipc_hides_host_message_queues(who):
    project = who.mkdir(who.base / "p")
    made = who.run(["ipcmk", "-Q"])
    assert made.returncode == 0, made.stderr
    qid = made.stdout.split(b":")[-1].strip()
    try:
        free = who.peninsula("run", "--", "ipcs", "-q", cwd=project)
        assert qid in free.stdout.split()
        inside = who.peninsula("run", "--unshare-ipc", "--", "ipcs", "-q", cwd=project)
        assert inside.returncode == 0, inside.stderr
        assert qid not in inside.stdout.split()
    finally:
        who.run(["ipcrm", "-q", qid.decode()])


# A root helper: run argv in a user namespace (ids 0-65535 mapped to
# themselves) whose namespace limits are all 0, as uid argv[1].
REFUSER = textwrap.dedent("""
    import ctypes, os, sys
    libc = ctypes.CDLL(None, use_errno=True)
    uid = int(sys.argv[1]); argv = sys.argv[2:]
    go_r, go_w = os.pipe(); ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        assert libc.unshare(0x10000000) == 0
        os.write(ready_w, b"x"); os.read(go_r, 1)
        for kind in ("user", "net", "pid", "ipc", "uts", "mnt"):
            with open(f"/proc/sys/user/max_{kind}_namespaces", "w") as f:
                f.write("0")
        if uid:
            os.setgroups([]); os.setgid(uid); os.setuid(uid)
        os.execvp(argv[0], argv)
    os.read(ready_r, 1)
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write("0 0 65536")
    os.write(go_w, b"x")
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
""")


@pytest.mark.parametrize("flag", ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"])
def test_a_refused_namespace_is_an_error(who, flag):
    project = who.mkdir(who.base / "p")
    helper = who.base / "refuser.py"
    helper.write_text(REFUSER)
    argv = [PY, str(helper), str(who.uid), PY, "-m", "peninsula", "run", flag, "--", "sh", "-c", "echo ran"]
    proc = subprocess.run(argv, cwd=project, env=who.env(), capture_output=True, timeout=60)
    assert proc.returncode == 125, proc.stderr
    assert b"cannot create the requested namespaces" in proc.stderr
    assert b"ENOSPC" in proc.stderr
    assert b"ran" not in proc.stdout
    # The same run without the namespace works under the same helper.
    argv.remove(flag)
    ok = subprocess.run(argv, cwd=project, env=who.env(), capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == b"ran"
