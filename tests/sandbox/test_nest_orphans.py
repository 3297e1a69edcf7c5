"""A nested run's command cannot kill its head to have its orphans judged by
an outer policy (review 2): the head puts the command in a Landlock domain
of its own that scopes signals, so kill() of the head gets EPERM while the
head can still signal in (forwarding, kill_tree). The routes: two nested
runs inside a third, and one nested run under an outer-level subreaper."""

from __future__ import annotations

import time

from .helpers import PY

# C: fork X, then kill the head (its parent) if told to; X writes the target
# after the head is gone, before any trapped call, so that it is judged by
# whatever state it is found in then.
ORPHAN = r"""
import os, sys, time, signal
path, kill = sys.argv[1], sys.argv[2] == "1"
head = os.getppid()
x = os.fork()
if x == 0:
    time.sleep(1.5)
    try:
        with open(path, "w") as f:
            f.write("escaped\n")
        print("X: wrote", flush=True)
    except OSError as e:
        print("X: refused", e.errno, flush=True)
    os._exit(0)
if kill:
    try:
        os.kill(head, signal.SIGKILL)
        print("C: killed head", flush=True)
    except OSError as e:
        print("C: kill head failed", e.errno, flush=True)
os._exit(0)
"""

# An outer-level child subreaper (as tini or some test runners are) that
# runs argv, keeping the nest socket open for it, and reaps what is left.
SUBREAPER = r"""
import ctypes, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
fds = (int(os.environ["PENINSULA_RUN_NEST_FD"]),) if "PENINSULA_RUN_NEST_FD" in os.environ else ()
subprocess.run(sys.argv[1:], pass_fds=fds)
while True:
    try:
        os.wait()
    except ChildProcessError:
        break
"""


def _scripts(who):
    proj = who.mkdir(who.base / "proj")
    who.mkdir(proj / "a")
    who.mkdir(proj / "a" / "b")
    return proj, who.write(who.base / "orphan.py", ORPHAN), who.write(who.base / "subreaper.py", SUBREAPER)


def _nest(*projects):
    argv = []
    for project in projects:
        argv += [PY, "-m", "peninsula", "run", "--project", project, "--"]
    return argv


def test_orphan_route_is_real_without_peninsula(who):
    """The control: a subreaper above a head that is killed gets the orphan,
    which then writes freely; so the scripts below do what they claim."""
    proj, orphan, subreaper = _scripts(who)
    target = proj / "free"
    # PY -c '...' is the "head" the orphan script kills.
    head = [PY, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])"]
    proc = who.run([PY, subreaper, *head, PY, orphan, target, "1"], cwd=proj, timeout=30)
    out = proc.stdout.decode()
    assert "C: killed head" in out and "X: wrote" in out, (out, proc.stderr)
    assert target.read_text() == "escaped\n"


def test_two_deep_head_kill_is_refused(who):
    proj, orphan, _ = _scripts(who)
    target = proj / "a" / "escaped"  # the middle run's policy allows it, the innermost's does not
    argv = _nest(proj, proj / "a", proj / "a" / "b")
    # without the kill, the innermost run refuses X's write
    proc = who.run(argv + [PY, orphan, target, "0"], cwd=proj, timeout=60)
    out = proc.stdout.decode()
    assert "X: refused 13" in out and not target.exists(), (out, proc.stderr)
    # the middle run does let it be written: the target is the escape
    proc = who.run(_nest(proj, proj / "a") + ["sh", "-c", f"echo ok > {target}"], cwd=proj, timeout=60)
    assert proc.returncode == 0 and target.read_text() == "ok\n", proc.stderr
    target.unlink()
    # the attack: the kill of the head is refused and X stays the innermost run's
    proc = who.run(argv + [PY, orphan, target, "1"], cwd=proj, timeout=60)
    out = proc.stdout.decode()
    assert "C: kill head failed 1" in out, (out, proc.stderr)  # EPERM: the head is outside the scope
    assert "X: refused 13" in out and not target.exists(), (out, proc.stderr)
    assert proc.returncode == 0, proc.stderr  # the heads lived to report the command's status


def test_subreaper_head_kill_is_refused(who):
    proj, orphan, subreaper = _scripts(who)
    target = proj / "escaped1"  # the outer run's policy allows it
    argv = [PY, "-m", "peninsula", "run", "--project", proj, "--", PY, subreaper,
            *_nest(proj / "a" / "b"), PY, orphan, target]
    proc = who.run(argv + ["0"], cwd=proj, timeout=60)
    out = proc.stdout.decode()
    assert "X: refused 13" in out and not target.exists(), (out, proc.stderr)
    proc = who.run(argv + ["1"], cwd=proj, timeout=60)
    out = proc.stdout.decode()
    assert "C: kill head failed 1" in out, (out, proc.stderr)
    assert "X: refused 13" in out and not target.exists(), (out, proc.stderr)


def test_head_still_signals_its_command(who):
    """The scope is one way: the head, outside it, still signals in. SIGTERM
    to a nested run's head kills its tree (kill_tree's SIGKILL), at once."""
    proj, _, _ = _scripts(who)
    script = (f"{' '.join(map(str, _nest(proj / 'a')))} sleep 30 & head=$!; sleep 1; kill -TERM $head; "
              "wait $head; echo status $?")
    start = time.monotonic()
    proc = who.run(_nest(proj) + ["sh", "-c", script], cwd=proj, timeout=60)
    assert b"status 137" in proc.stdout, (proc.stdout, proc.stderr)  # 128 + SIGKILL: the command's end
    assert time.monotonic() - start < 20, "the sleep outlived its head's kill"
