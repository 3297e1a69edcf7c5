"""Resource limits: each is set in the command before exec and binds it
(and, for the counted ones, everything it starts); each denied case is
shown to work without the option."""

from __future__ import annotations

import os
import signal

from .helpers import PY, processes_with, run_with_report, wait_gone

FORKS = 200
# Forks up to FORKS children that wait for the parent; prints how many it got.
FORKER = f"""
import os
r, w = os.pipe()
n = 0
for _ in range({FORKS}):
    try:
        pid = os.fork()
    except BlockingIOError:
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    n += 1
print("forked", n, flush=True)
"""


def test_nproc_stops_forks_for_a_user(user):
    """RLIMIT_NPROC, counted over the user's tasks; root's --limit-nproc is
    a pids cgroup instead (test_limit_nproc_root.py)."""
    who = user
    project = who.mkdir(who.base / "p")
    free = who.peninsula("run", "--", PY, "-c", FORKER, cwd=project)
    assert free.returncode == 0, free.stderr
    assert f"forked {FORKS}".encode() in free.stdout
    # The kernel counts every task (thread) of the user: the caller, the
    # supervisor and whatever else the user runs (other test suites too). Leave room for 60 more.
    limit = _tasks_of(who.uid) + 60
    limited = who.peninsula("run", "--limit-nproc", str(limit), "--", PY, "-c", FORKER, cwd=project)
    assert limited.returncode == 0, limited.stderr
    got = int(limited.stdout.split()[-1])
    assert 0 < got < 60 + 5


def _tasks_of(uid: int) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return count


def test_fork_bomb_is_contained_by_nproc(user):
    """A real shell fork bomb, as the unprivileged user: --limit-nproc caps it,
    the wall-time limit ends it, nothing of it is left."""
    project = user.mkdir(user.base / "p")
    marker = "peninsula-forkbomb-7731"
    bomb = f"b() {{ b | b & }}; b; exec -a {marker} sleep 600"
    proc, report = run_with_report(user, "--limit-nproc", "40", "--limit-walltime", "3", "--quiet", "--",
                                   "bash", "-c", bomb, cwd=project, timeout=60)
    assert proc.returncode == 124, proc.stderr[-2000:]
    assert report["status"] == "timed out"
    assert wait_gone(marker) == []
    assert wait_gone("b | b") == []


def test_address_space(who):
    project = who.mkdir(who.base / "p")
    grab = "x = bytearray(400 * 1024 * 1024); print('got', len(x))"
    free = who.peninsula("run", "--", PY, "-c", grab, cwd=project)
    assert free.returncode == 0 and b"got" in free.stdout, free.stderr
    limited = who.peninsula("run", "--limit-as", "256M", "--", PY, "-c", grab, cwd=project)
    assert limited.returncode == 1
    assert b"MemoryError" in limited.stderr


def test_cpu_time(who):
    project = who.mkdir(who.base / "p")
    spin = "import time\nwhile time.process_time() < 2.5: pass\nprint('done')"
    free = who.peninsula("run", "--", PY, "-c", spin, cwd=project)
    assert free.returncode == 0 and b"done" in free.stdout
    proc, report = run_with_report(who, "--limit-cpu", "1", "--", PY, "-c", spin, cwd=project)
    assert proc.returncode == 128 + signal.SIGXCPU, proc.stderr
    assert report["status"] == "signaled" and report["signal"] == signal.SIGXCPU
    assert b"done" not in proc.stdout


def test_file_size(who):
    project = who.mkdir(who.base / "p")
    write = ["sh", "-c", "head -c 3000000 /dev/zero > big; echo rc=$?"]
    free = who.peninsula("run", "--", *write, cwd=project)
    assert free.returncode == 0 and b"rc=0" in free.stdout
    assert (project / "big").stat().st_size == 3000000
    (project / "big").unlink()
    limited = who.peninsula("run", "--limit-fsize", "1M", "--", *write, cwd=project)
    assert limited.returncode == 0
    assert f"rc={128 + signal.SIGXFSZ}".encode() in limited.stdout  # head got SIGXFSZ
    assert (project / "big").stat().st_size == 1024 * 1024


def test_open_files(who):
    project = who.mkdir(who.base / "p")
    many = "fds = [open('/dev/null') for _ in range(100)]; print('open', len(fds))"
    free = who.peninsula("run", "--", PY, "-c", many, cwd=project)
    assert free.returncode == 0 and b"open 100" in free.stdout
    limited = who.peninsula("run", "--limit-nofile", "20", "--", PY, "-c", many, cwd=project)
    assert limited.returncode == 1
    assert b"Too many open files" in limited.stderr


def test_bad_limit_values_are_refused(who):
    project = who.mkdir(who.base / "p")
    for args in (["--limit-as", "lots"], ["--limit-nofile", "-3"], ["--limit-walltime", "0"], ["--limit-cpu", "1.5"]):
        proc = who.peninsula("run", *args, "--", "true", cwd=project)
        assert proc.returncode == 125, (args, proc.stderr)
        assert args[0].encode() in proc.stderr


def test_raising_a_hard_limit_needs_root(who):
    project = who.mkdir(who.base / "p")
    proc = who.peninsula("run", "--limit-nofile", str(2**40), "--", "true", cwd=project)
    assert proc.returncode == 125
    if who.is_root:
        assert b"--limit-nofile" in proc.stderr  # above fs.nr_open: the kernel refuses
    else:
        assert b"above the hard limit" in proc.stderr
