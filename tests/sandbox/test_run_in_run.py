"""`peninsula run` inside `peninsula run` (issue 14): the outer run's
supervisor judges the nested command's tree by Both(outer, inner), so a
nested run can only narrow. Every route is tried where it works too."""

from __future__ import annotations

import json

import pytest
from cbuild import compile_c
from reliability.test_nesting import OTHER_SANDBOX_C

from .helpers import PY


def _dirs(who):
    project = who.mkdir(who.base / "proj")
    a = who.mkdir(who.base / "A")
    who.mkdir(a / "sub")
    b = who.mkdir(who.base / "B")
    return project, a, b


def _run(who, project, *argv, timeout=60):
    return who.peninsula("run", *argv, cwd=project, timeout=timeout)


def _nested(who, *inner):
    return ["--", PY, "-m", "peninsula", "run", *inner]


def test_nested_run_narrows(who):
    project, a, _ = _dirs(who)
    script = f"echo a > {a}/sub/in; echo b > {a}/x"
    proc = _run(who, project, "--write", a, *_nested(who, "--write", a / "sub", "--", "sh", "-c", script))
    err = proc.stderr.decode()
    assert "EBUSY" not in err and "cannot nest" not in err, err
    assert (a / "sub" / "in").read_text() == "a\n"
    assert not (a / "x").exists()
    assert f"denied open of {a}/x" in err and "of this nested run" in err, err
    assert proc.returncode == 2, err  # sh: the redirection failed
    # the control: without the inner run, the outer one lets A/x be written
    proc = _run(who, project, "--write", a, "--", "sh", "-c", script)
    assert proc.returncode == 0 and (a / "x").read_text() == "b\n", proc.stderr
    # and a run nested twice narrows twice
    (a / "x").unlink()
    (a / "sub" / "in").unlink()
    twice = _nested(who, "--write", a, *_nested(who, "--write", a / "sub", "--", "sh", "-c", f"echo c > {a}/x"))
    proc = _run(who, project, *twice)
    assert proc.returncode == 2 and not (a / "x").exists(), proc.stderr


def test_nested_run_cannot_widen(who):
    project, a, b = _dirs(who)
    proc = _run(who, project, "--write", a, *_nested(who, "--write", b, "--", "sh", "-c", f"echo b > {b}/y"))
    err = proc.stderr.decode()
    assert f"--write {b}: not writable here" in err and "cannot widen" in err, err
    assert proc.returncode == 2 and not (b / "y").exists(), err
    # the control: the same run, not nested, writes there
    proc = _run(who, project, "--write", b, "--", "sh", "-c", f"echo b > {b}/y")
    assert proc.returncode == 0 and (b / "y").exists(), proc.stderr


def test_nested_exit_status_report_walltime(who):
    project, a, _ = _dirs(who)
    report = project / "inner.json"  # written by the head, judged by the outer run
    proc = _run(who, project, "--write", a,
                *_nested(who, "--report", report, "--", "sh", "-c", f"echo z > {a}/z; exit 3"))
    assert proc.returncode == 3, proc.stderr
    data = json.loads(report.read_text())
    assert (data["status"], data["exit_code"], data["denials"]) == ("exited nonzero", 3, 1), data
    assert data["first_denials"][0]["path"] == f"{a}/z", data
    proc = _run(who, project, *_nested(who, "--", "sh", "-c", "kill -TERM $$"))
    assert proc.returncode == 128 + 15, proc.stderr
    proc = _run(who, project, *_nested(who, "--limit-walltime", "1", "--", "sleep", "30"))
    assert proc.returncode == 124 and b"wall-time limit of 1s reached" in proc.stderr, proc.stderr


def test_refused_options_are_named(who):
    project, _, _ = _dirs(who)
    proc = _run(who, project, *_nested(who, "--unshare-net", "--", "true"))
    assert proc.returncode == 125
    assert b"cannot nest inside this peninsula run: --unshare-*" in proc.stderr, proc.stderr
    # --limit-nproc: an rlimit for a plain user; root needs a pids cgroup, which a nested run cannot make
    script = "sleep 2 & sleep 2 & sleep 2 & wait; echo forked=$?"
    proc = _run(who, project, *_nested(who, "--limit-nproc", "2", "--", "sh", "-c", script))
    if who.is_root:
        assert proc.returncode == 125 and b"--limit-nproc: RLIMIT_NPROC does not bind root" in proc.stderr, proc.stderr
    else:
        assert b"fork" in proc.stderr.lower() or b"resource temporarily unavailable" in proc.stderr.lower(), proc.stderr


ORPHAN = """
# the nested command kills its head, then leaves an orphan (a double
# fork) that writes only once it has been reparented
kill -KILL $PPID
sleep 0.2
( sh -c 'sleep 0.5; echo o > {a}/orphan; echo wrote=$? > {a}/sub/done' & )
sleep 1.5
"""


def test_orphan_of_a_nested_run_stays_narrow(who):
    project, a, _ = _dirs(who)
    script = ORPHAN.format(a=a)
    _run(who, project, "--write", a, *_nested(who, "--write", a / "sub", "--", "sh", "-c", script))
    assert (a / "sub" / "done").read_text().startswith("wrote=") and not (a / "orphan").exists()
    assert (a / "sub" / "done").read_text() != "wrote=0\n"
    # the control: the same script in the outer run alone writes there
    (a / "sub" / "done").unlink()
    _run(who, project, "--write", a, "--", "sh", "-c", script.replace("kill -KILL $PPID", "true"))
    assert (a / "orphan").exists() and (a / "sub" / "done").read_text() == "wrote=0\n"


FORGER = r'''
import array, json, os, select, socket, sys, time
from peninsula.sandbox.run_channel import _poke
CHANNEL = int(os.environ["PENINSULA_RUN_NEST_FD"])
OUT = sys.argv[1]
REQUEST = {"op": "nest", "writable": [OUT + "/sub"], "protected": [], "hardlinked_writes": False}

def ask(reply_end, keep, fds):
    """Send a nest request whose reply goes to reply_end's pair; the reply or None."""
    with socket.socket(fileno=os.dup(CHANNEL)) as channel:
        channel.sendmsg([json.dumps(REQUEST).encode()],
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(array.array("i", [reply_end.fileno(), *fds])))])
    _poke()
    if not select.select([keep], [], [], 2)[0]:
        return None
    return json.loads(keep.recv(65536))

def writer():
    """A child that writes OUT/<pid> when told to, and says whether it could."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        try:
            open(f"{OUT}/w{os.getpid()}", "w").close()
            os._exit(0)
        except OSError:
            os._exit(13)
    os.close(r)
    return pid, w

def written(pid, w):
    os.write(w, b"g")
    os.close(w)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

mode = sys.argv[2]
if mode == "not-my-child":
    # my parent, and pid 1: neither is my child
    for victim in (os.getppid(), 1):
        keep, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pidfd = os.pidfd_open(victim)
        reply = ask(theirs, keep, [pidfd, 2])
        print(victim == 1 and "init" or "parent", reply and reply.get("error"))
elif mode == "impersonate":
    # the socketpair is made here, in the parent P; M (a child) sends it for
    # its sibling V, a child of P: the kernel names M as the sender, not P
    keep, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    victim, go = writer()
    m = os.fork()
    if m == 0:
        pidfd = os.pidfd_open(victim)
        print("forged", ask(theirs, keep, [pidfd, 2]), flush=True)
        os._exit(0)
    os.waitpid(m, 0)
    print("victim-wrote", written(victim, go))
    # the control: P itself asks for its own child, and that child is narrowed
    keep, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child, go = writer()
    reply = ask(theirs, keep, [os.pidfd_open(child), 2])
    print("own", "error" not in reply, "child-wrote", written(child, go))
'''


def test_nest_requests_name_only_the_requesters_child(who):
    project, a, _ = _dirs(who)
    script = who.write(who.base / "forger.py", FORGER)
    proc = _run(who, project, "--write", a, "--", PY, script, a, "not-my-child")
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    assert "parent nest: the command is not the caller's child" in out, out
    # (a plain user's supervisor may not even signal init: refused before asking whose child it is)
    assert ("init nest: the command is not the caller's child" in out
            or "init nest: the command vanished ([Errno 1] Operation not permitted)" in out), out
    proc = _run(who, project, "--write", a, "--", PY, script, a, "impersonate")
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    assert "forged None" in out, out  # no answer: the sender did not make the reply socket
    assert "victim-wrote True" in out, out  # not narrowed
    assert "own True child-wrote False" in out, out  # the same request, from P, narrows


def test_foreign_notify_sandbox_inside_a_run_gets_ebusy(who):
    project, _, _ = _dirs(who)
    other = compile_c(OTHER_SANDBOX_C, "other_sandbox")
    marker = project / "ran"
    proc = _run(who, project, "--", other, "touch", marker)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and not marker.exists(), err
    assert "Device or resource busy" in err, err  # the kernel's EBUSY, as the program saw it
    assert "asked for a seccomp notify listener of its own" in err and "this peninsula run's comes first" in err, err
    # the control: the other sandbox works unconfined
    ok = who.run([other, "touch", marker], cwd=project, timeout=60)
    assert ok.returncode == 0 and marker.exists(), ok.stderr


@pytest.mark.xfail(strict=True, reason=("--fast cannot apply in `peninsula run` any more (tests/sandbox/test_fast.py): "
                                        "the outer run is not fast, so the nested run nests"))
def test_no_nesting_under_an_outer_fast_run(who):
    """--fast lets Landlock alone judge the outer run's creates and renames,
    by the outer roots: a nested policy could not bear on them."""
    project, a, _ = _dirs(who)
    # A login's runtime dir (as test_fast.py): else the sessions' root in
    # /tmp is a protection inside a writable root, and --fast is not applied.
    env = {"XDG_RUNTIME_DIR": str(who.mkdir(who.base / "runtime"))}
    proc = who.peninsula("run", "--fast", *_nested(who, "--", "touch", a / "f"), cwd=project, env=env, timeout=60)
    assert proc.returncode == 125 and not (a / "f").exists(), proc.stderr
    assert b"cannot nest inside this peninsula run: it was started with --fast" in proc.stderr, proc.stderr
    # the control: the same outer run without --fast nests
    proc = who.peninsula("run", "--write", a, *_nested(who, "--", "touch", project / "f"), cwd=project, env=env, timeout=60)
    assert proc.returncode == 0 and (project / "f").exists(), proc.stderr


FAKE_OUTER = r'''
import array, json, os, socket, sys
# A fake "outer run" that grants every nest request, named by the variable.
mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
if os.fork() == 0:
    theirs.close()
    while True:
        data, anc, _, _ = mine.recvmsg(65536, socket.CMSG_SPACE(64))
        if not data:
            os._exit(0)
        fds = array.array("i")
        for _, _, raw in anc:
            fds.frombytes(raw[:len(raw) - len(raw) % 4])
        reply = {"denials": 0, "first": []} if b"nest-end" in data else {"state": "fake", "outer": "fake", "allow": True}
        socket.socket(fileno=fds[0]).send(json.dumps(reply).encode())
mine.close()
theirs.set_inheritable(True)
os.environ["PENINSULA_RUN_NEST_FD"] = str(theirs.fileno())
os.execvp(sys.argv[1], sys.argv[1:])
'''


def test_a_forged_nest_socket_is_not_believed(who):
    """Under another seccomp filter (here a notify sandbox's; a container's
    would do), with the variable naming a socket whose peer is no
    supervisor above: the run does not hand its command to that peer."""
    project, a, _ = _dirs(who)
    other = compile_c(OTHER_SANDBOX_C, "other_sandbox")
    fake = who.write(who.base / "fake_outer.py", FAKE_OUTER)
    write = ["sh", "-c", f"echo x > {a}/f"]
    proc = who.run([other, PY, fake, PY, "-m", "peninsula", "run", "--", *write], cwd=project, timeout=60)
    assert not (a / "f").exists(), proc.stderr
    assert proc.returncode == 125 and b"EBUSY" in proc.stderr, proc.stderr  # it tried a supervisor of its own
    # the control: the same command under the fake, without peninsula, writes there
    proc = who.run([other, PY, fake, *write], cwd=project, timeout=60)
    assert proc.returncode == 0 and (a / "f").exists(), proc.stderr
