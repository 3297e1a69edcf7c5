"""Faults: the supervisor killed or stopped mid-request, targets that die
mid-request, a target at its fd limit, a target with a 1 ms timer signal,
a full disk, and a bad config file.

Invariant 6: fail closed, lose nothing, never crash, never hang.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import (FIGURES, SYSTEM_PYTHON, compile_c, diff, figure, no_traceback, proc_state, snapshot,
                       threads_of)

# Writers that journal every write they saw succeed, through an fd opened
# before anything goes wrong (write() on it is never trapped).
WRITERS = r'''
import errno, hashlib, os, sys, time
proj, outside, nwriters, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
journal = os.open(proj + "/journal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def say(text):
    os.write(journal, (text + "\n").encode())
say("sup %d" % os.getppid())

def body(name):
    return hashlib.sha256(name.encode()).hexdigest().encode() * 20

def writer(w):
    os.makedirs("%s/w%d" % (proj, w), exist_ok=True)
    first_failure = None
    after = 0
    for i in range(limit):
        name = "w%d/%d" % (w, i)
        try:
            fd = os.open(proj + "/" + name, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        except OSError as e:
            first_failure = first_failure or errno.errorcode[e.errno]
            after += 1
            if after >= 20:
                break
            time.sleep(0.005)
            continue
        where = os.readlink("/proc/self/fd/%d" % fd)
        if where != proj + "/" + name:
            say("WRONGFD %s got fd %d, which is %s" % (name, fd, where))
            continue
        data = body(name)
        os.write(fd, data[:1000])
        os.write(fd, data[1000:])
        os.close(fd)
        say("ok " + name)
        try:
            os.close(os.open("%s/%s-%d" % (outside, name.replace("/", "-"), i), os.O_CREAT | os.O_WRONLY, 0o644))
            say("LEAK " + name)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.ENOSYS):
                say("WRONG %s %s" % (name, errno.errorcode[e.errno]))
    say("end w%d %s" % (w, first_failure))

def fifo_opener():
    path = proj + "/fifo"
    try:
        os.mkfifo(path)
    except FileExistsError:
        pass
    say("fifo-wait %d" % os.getpid())
    try:
        os.close(os.open(path, os.O_WRONLY))
        say("fifo-result OK")
    except OSError as e:
        say("fifo-result " + errno.errorcode[e.errno])

kids = []
for w in range(nwriters):
    pid = os.fork()
    if pid == 0:
        try:
            writer(w)
        finally:
            os._exit(0)
    kids.append(pid)
if "--fifo" in sys.argv:
    pid = os.fork()
    if pid == 0:
        try:
            fifo_opener()
        finally:
            os._exit(0)
    kids.append(pid)
for pid in kids:
    os.waitpid(pid, 0)
say("done")
'''


def body(name: str) -> bytes:
    import hashlib
    return hashlib.sha256(name.encode()).hexdigest().encode() * 20


def journal(project: Path) -> list[str]:
    path = project / "journal"
    return path.read_text().splitlines() if path.exists() else []


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    FIGURES["hangs"] += 1
    raise AssertionError(f"timed out waiting for {what}")


def fifo_threads(pid: int) -> list[int]:
    """The supervisor's threads blocked in openat (a FIFO open in flight)."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as handle:
                if handle.read().split()[0] == "257":
                    found.append(int(tid))
        except (OSError, IndexError):
            pass
    return found


def check_journal(lay, lines: list[str]) -> int:
    """Every write a writer saw succeed is there, whole."""
    oks = [l[3:] for l in lines if l.startswith("ok ")]
    for name in oks:
        data = (lay.project / name).read_bytes()
        if data != body(name):
            found = [str(f) for f in lay.project.rglob("*") if f.is_file() and f.read_bytes() == body(name)]
            st = os.stat(lay.project / name)
            raise AssertionError(f"{name}: {len(data)} bytes, not {len(body(name))}; its content is at {found}; "
                                 f"inode {st.st_ino} mtime {st.st_mtime_ns}; journal around: "
                                 f"{[l for l in lines if name in l or l.startswith('end')]}")
    assert not [l for l in lines if l.startswith(("LEAK", "WRONG"))], [l for l in lines if l.startswith(("LEAK", "WRONG"))]
    figure("writes_checked", len(oks))
    return len(oks)


def test_supervisor_killed_mid_request(lay):
    """SIGKILL the supervisor while four writers hammer it and a FIFO open
    is in flight: every trapped call then fails with ENOSYS (the in-flight
    one included), `peninsula run` says so and exits 123, every write a
    writer saw succeed is intact, nothing outside changed."""
    script = lay.script(WRITERS, "writers.py")
    before = snapshot(lay.outside)
    started = lay.start([SYSTEM_PYTHON, script, lay.project, lay.outside, 4, 100000, "--fifo"])
    sup = started.supervisor()
    wait_for(lambda: sum(l.startswith("ok ") for l in journal(lay.project)) >= 300, 60, "300 writes")
    wait_for(lambda: any(l.startswith("fifo-wait") for l in journal(lay.project)), 30, "the FIFO opener")
    # the FIFO open is in flight: a supervisor thread is blocked opening it
    wait_for(lambda: fifo_threads(sup), 30, "the FIFO open to reach the supervisor")
    os.kill(sup, signal.SIGKILL)
    proc = started.wait(timeout=60)
    lines = journal(lay.project)
    assert proc.returncode == 123, (proc.returncode, proc.stderr[-2000:])
    assert b"the supervisor died" in proc.stderr and b"ENOSYS" in proc.stderr
    ends = [l.split() for l in lines if l.startswith("end ")]
    assert len(ends) == 4 and all(e[2] == "ENOSYS" for e in ends), ends
    assert "fifo-result ENOSYS" in lines, lines[-10:]
    assert "done" in lines
    check_journal(lay, lines)
    changes = diff(before, snapshot(lay.outside))
    if changes:
        figure("escapes", 1)
    assert not changes
    # the control: without peninsula the same writers do write outside
    ctl_proj = lay.dir(lay.base / "ctl")
    ctl = lay.plain([SYSTEM_PYTHON, script, ctl_proj, lay.outside, 1, 3], cwd=ctl_proj)
    assert ctl.returncode == 0 and sum(l.startswith("LEAK") for l in journal(ctl_proj)) == 3


def test_supervisor_stopped_and_continued(lay):
    """SIGSTOP the supervisor: writers stall in their trapped opens; after
    SIGCONT every write completes correctly."""
    script = lay.script(WRITERS, "writers.py")
    n = 3000
    started = lay.start([SYSTEM_PYTHON, script, lay.project, lay.outside, 2, n])
    sup = started.supervisor()
    wait_for(lambda: sum(l.startswith("ok ") for l in journal(lay.project)) >= 50, 60, "50 writes")
    os.kill(sup, signal.SIGSTOP)
    try:
        wait_for(lambda: proc_state(sup) == "T", 10, "the supervisor to stop")
        time.sleep(0.3)
        stalled = len(journal(lay.project))
        time.sleep(1.0)
        assert len(journal(lay.project)) == stalled, "writes went on while the supervisor was stopped"
        assert stalled < 2 * n + 1
    finally:
        os.kill(sup, signal.SIGCONT)
    proc = started.wait(timeout=120)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = journal(lay.project)
    assert [l for l in lines if l.startswith("end ")] == ["end w0 None", "end w1 None"] or \
        sorted(l for l in lines if l.startswith("end ")) == ["end w0 None", "end w1 None"]
    assert check_journal(lay, lines) == 2 * n


def test_supervisor_stopped_and_continued_often(lay, stress):
    """Job control on the supervisor (Ctrl-Z in a terminal stops the whole
    job, the supervisor included): hundreds of SIGSTOP/SIGCONT pairs while
    two writers work. Every write must land where the writer was told it
    went, intact."""
    script = lay.script(WRITERS, "writers.py")
    n = 3000 if stress else 1000
    started = lay.start([SYSTEM_PYTHON, script, lay.project, lay.outside, 2, n])
    sup = started.supervisor()
    wait_for(lambda: journal(lay.project), 30, "the writers")
    cycles = 0
    try:
        while started.popen.poll() is None and cycles < (2000 if stress else 400):
            try:
                os.kill(sup, signal.SIGSTOP)
                time.sleep(0.001)
                os.kill(sup, signal.SIGCONT)
            except ProcessLookupError:
                break
            cycles += 1
            time.sleep(0.002)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGCONT)
    proc = started.wait(timeout=120)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cycles > 20
    assert check_journal(lay, journal(lay.project)) == 2 * n
