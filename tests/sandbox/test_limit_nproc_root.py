"""--limit-nproc as root. RLIMIT_NPROC does not bind root, so the limit is
a pids cgroup around the command; where none can be made, the run is
refused with one line that says why (never a silent no-op)."""

from __future__ import annotations

import os
import subprocess

from .helpers import PY

FORKS = 300
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


def _our_cgroups() -> set[str]:
    found = set()
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        found |= {os.path.join(root, d) for d in dirs if d.startswith("peninsula-run-")}
    return found


def test_root_nproc_binds_by_a_pids_cgroup(root):
    project = root.mkdir(root.base / "p")
    free = root.peninsula("run", "--", PY, "-c", FORKER, cwd=project)
    assert free.returncode == 0, free.stderr
    assert f"forked {FORKS}".encode() in free.stdout  # the control: root forks freely
    before = _our_cgroups()
    limited = root.peninsula("run", "--limit-nproc", "50", "--", PY, "-c", FORKER, cwd=project)
    assert limited.returncode == 0, limited.stderr
    # 50 tasks in the sandbox: the forker itself and 49 children.
    assert limited.stdout.split() == [b"forked", b"49"], limited.stdout
    assert _our_cgroups() == before, "the run's pids cgroup was left behind"


def test_root_nproc_binds_a_shell_fork_bomb(root):
    project = root.mkdir(root.base / "p")
    bomb = "b() { b | b & }; b; sleep 2; echo survived"
    proc = root.peninsula("run", "--limit-nproc", "30", "--limit-walltime", "3", "--quiet", "--",
                          "bash", "-c", bomb, cwd=project, timeout=60)
    assert b"fork: retry" in proc.stderr or b"Resource temporarily unavailable" in proc.stderr, proc.stderr[-2000:]


def test_root_nproc_is_refused_without_a_pids_cgroup(root):
    project = root.mkdir(root.base / "p")
    # A mount namespace of its own with every cgroup hierarchy unmounted:
    # no pids cgroup can be made there.
    script = ("findmnt -n -l -t cgroup,cgroup2 -o TARGET | sort -r | xargs -r umount && "
              f"exec {PY} -m peninsula run --limit-nproc 50 -- {PY} -c 'print(\"ran\")'")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], cwd=project,
                          env=root.env(), capture_output=True, timeout=60)
    assert proc.returncode == 125, (proc.stdout, proc.stderr)
    assert b"ran" not in proc.stdout
    lines = proc.stderr.decode().splitlines()
    assert lines == [lines[0]] and "--limit-nproc 50: the kernel does not apply RLIMIT_NPROC to root" in lines[0], lines
    assert "no pids cgroup hierarchy is mounted" in lines[0], lines
