"""Issue 17 class 2: the control socket's caller is the process that
connected, judged when it connected, not whoever holds its pid later.

The attack: a confined process connects, sends an exec request without its
last byte, hands the connection to a helper and exits; its pid is then
given to an unconfined process (here at once, through ns_last_pid), and
the helper finishes the request. The positive control runs the same steps
from outside the project, where the command does run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import supervised

ATTACK = r'''
import json, os, socket, sys, time
pidfile, gofile, replyfile, out = sys.argv[1:5]
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect(os.path.join(os.environ["PENINSULA_SESSION_DIR"], "control.sock"))
argv = ["sh", "-c", f"echo pwned > {out}"]
request = json.dumps({"op": "exec", "argv": argv, "env": dict(os.environ)}).encode()
cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
socket.send_fds(conn, [request], [0, 1, 2, cwd])  # everything but the newline
if os.fork() == 0:
    os.setsid()
    while not os.path.exists(gofile):
        time.sleep(0.01)
    try:
        conn.sendall(b"\n")
        line = conn.makefile("rb").readline()
    except OSError as err:
        line = f"{err}\n".encode()
    with open(replyfile, "wb") as handle:
        handle.write(line or b"(closed)\n")
    os._exit(0)
time.sleep(0.2)  # the supervisor accepts meanwhile
with open(pidfile, "w") as handle:
    handle.write(str(os.getpid()))
'''


def _wait(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _take_pid(pid: int, uid: int) -> int:
    """Start a process of uid, outside every sandbox, that gets pid."""
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as handle:
            handle.write(str(pid - 1))
        child = os.fork()
        if child == 0:
            os.setuid(uid)
            time.sleep(5)
            os._exit(0)
        if child == pid:
            return child
        os.kill(child, 9)
        os.waitpid(child, 0)
    raise AssertionError(f"could not get pid {pid}")


def _reply_file(home, tag: str) -> Path:
    # In /tmp: the helper is an orphan, judged by the strictest policy.
    return Path("/tmp") / f"{home.parent.parent.name}-{tag}.reply"


def _cycle(home, user, attack, tag: str) -> str:
    where = home / "proj"
    pidfile, gofile, replyfile = where / f"{tag}.pid", where / f"{tag}.go", _reply_file(home, tag)
    return f"python3 {attack} {pidfile} {gofile} {replyfile} {home}/out/{tag}"


def _finish(home, user, tag: str, term) -> str:
    where = home / "proj"
    pidfile = where / f"{tag}.pid"
    assert _wait(pidfile.exists)
    pid = int(pidfile.read_text())
    assert _wait(lambda: not os.path.exists(f"/proc/{pid}"))  # exited and reaped
    started = time.monotonic()
    holder = _take_pid(pid, user.uid)
    print(f"pid {pid} taken in {time.monotonic() - started:.2f} s")
    try:
        (where / f"{tag}.go").write_text("")
        reply = _reply_file(home, tag)
        assert _wait(reply.exists), subprocess.run(["ps", "-eo", "pid,ppid,stat,args"], capture_output=True, text=True).stdout + term.screen()
        assert _wait(lambda: reply.read_text().endswith("\n"))
        time.sleep(0.5)  # a command that was started has written by now
        text = reply.read_text()
        reply.unlink()
        return text
    finally:
        os.kill(holder, 9)
        os.waitpid(holder, 0)


@pytest.fixture
def attack(user, home):
    if os.geteuid() != 0:
        pytest.skip("giving a chosen pid to a process needs root (ns_last_pid)")
    return user.write(home / "attack.py", ATTACK)


def test_a_reused_pid_does_not_make_a_confined_caller_unconfined(term_factory, home, user, attack):
    term = term_factory("bash")
    supervised(term)
    # Positive control: from outside the project the same steps run the command.
    term.run(_cycle(home, user, attack, "control"))
    reply = _finish(home, user, "control", term)
    assert '"pid"' in reply, reply
    assert (home / "out" / "control").read_text() == "pwned\n"
    # The attack, from inside.
    term.run("cd proj")
    term.run(_cycle(home, user, attack, "attack"))
    term.run("cd ..")  # the session's policy is now the unconfined one
    reply = _finish(home, user, "attack", term)
    assert "refused: the caller runs confined" in reply, reply
    assert not (home / "out" / "attack").exists()


def test_a_request_that_does_not_arrive_is_dropped(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    text = term.run('echo "dir=$PENINSULA_SESSION_DIR"')
    session_dir = text.split("dir=")[-1].split()[0]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(os.path.join(session_dir, "control.sock"))
        conn.sendall(b'{"op": "status"')  # never finished
        conn.settimeout(10)
        started = time.monotonic()
        reply = conn.recv(4096)
        waited = time.monotonic() - started
    assert b"did not arrive in time" in reply
    assert 1.5 < waited < 5
