"""--limit-walltime: the command and every process it started, grandchildren,
setsid'd and double-forked daemons included, are killed; exit 124."""

from __future__ import annotations

import os
import time

import pytest

from .helpers import PY, processes_with, run_with_report, wait_gone

# A child, a grandchild in its own session, and a double-forked daemon
# whose parent exited (an orphan): each runs `sleep` under a marker name.
SPAWNER = """
set -e
marker=$1
exec_sleep() { (exec -a "$marker-$1" sleep "$2") ; }
exec_sleep child {t} &
setsid bash -c "exec -a $marker-session sleep {t}" &
bash -c "(exec -a $marker-orphan sleep {t} &) ; exit 0"
echo started
exec -a "$marker-main" sleep {t}
"""


@pytest.mark.parametrize("pidns", [False, True], ids=["plain", "unshare-pid"])
def test_walltime_kills_the_whole_tree(who, pidns):
    project = who.mkdir(who.base / "p")
    marker = f"pwt{time.monotonic_ns()}"
    script = SPAWNER.replace("{t}", "300")
    extra = ["--unshare-pid"] if pidns else []
    began = time.monotonic()
    proc, report = run_with_report(who, "--limit-walltime", "2", *extra, "--",
                                   "bash", "-c", script, "spawner", marker, cwd=project, timeout=60)
    took = time.monotonic() - began
    assert proc.returncode == 124, proc.stderr
    assert b"started" in proc.stdout
    assert report["status"] == "timed out" and report["signal"] == 9
    assert 1.9 < report["real_time"] < 10 and took < 15
    assert b"wall-time limit of 2s reached" in proc.stderr
    assert wait_gone(marker, 2) == [], "processes survived the wall-time kill"


def test_without_the_limit_the_same_tree_runs_to_its_end(who):
    project = who.mkdir(who.base / "p")
    marker = f"pwt{time.monotonic_ns()}"
    script = SPAWNER.replace("{t}", "1")
    proc, report = run_with_report(who, "--limit-walltime", "30", "--", "bash", "-c", script, "spawner", marker,
                                   cwd=project, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert report["status"] == "ok"
    # peninsula waits until the last sandboxed process is gone, daemons included.
    assert report["real_time"] >= 1
    assert processes_with(marker) == []


def test_walltime_reported_even_when_the_command_ignores_sigterm(who):
    project = who.mkdir(who.base / "p")
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(300)"
    proc, report = run_with_report(who, "--limit-walltime", "1.5", "--", PY, "-c", code, cwd=project, timeout=60)
    assert proc.returncode == 124
    assert report["status"] == "timed out"
    assert report["exit_code"] is None


def test_sigterm_to_peninsula_kills_the_tree(who):
    """A cancelled CI job: SIGTERM to `peninsula run` takes everything with it."""
    import signal
    import subprocess

    project = who.mkdir(who.base / "p")
    marker = f"pterm{time.monotonic_ns()}"
    proc = subprocess.Popen(
        who.prefix() + [PY, "-m", "peninsula", "run", "--", "bash", "-c", SPAWNER.replace("{t}", "300"), "spawner", marker],
        cwd=project, env=who.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"started\n"
        time.sleep(0.3)
        assert len(processes_with(marker)) >= 3
        proc.send_signal(signal.SIGTERM)  # setpriv execs, so this is peninsula itself
        assert proc.wait(timeout=30) == 128 + signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    assert wait_gone(marker) == []


@pytest.mark.parametrize("pidns", [False, True], ids=["plain", "unshare-pid"])
def test_ctrl_c_reaches_the_command_and_peninsula_reports_it(who, pidns):
    """SIGINT to the foreground process group (what Ctrl-C does): the
    command dies of it, peninsula returns 130 without a traceback."""
    import signal
    import subprocess

    project = who.mkdir(who.base / "p")
    extra = ["--unshare-pid"] if pidns else []
    proc = subprocess.Popen(who.prefix() + [PY, "-m", "peninsula", "run", *extra, "--", "sh", "-c", "echo up; exec sleep 30"],
                            cwd=project, env=who.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout.readline() == b"up\n"
        time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 128 + signal.SIGINT
    finally:
        proc.kill()
        proc.wait()
    assert b"Traceback" not in proc.stderr.read()
