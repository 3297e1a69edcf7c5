"""Hostile input: every trapped syscall with random and adversarial
arguments, from a confined C program (fuzz.c, compiled at test time).

No exception may reach the supervisor's loop (run with -v, so one would
print a traceback), every answer must be an errno, the supervisor must
still serve afterwards, and nothing outside the project may change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import SYSTEM_PYTHON, compile_c, diff, figure, no_traceback, proc_state, snapshot

FUZZ_C = (Path(__file__).parent / "fuzz.c").read_text()


def fixture(lay, project: Path, outside: Path) -> None:
    lay.file(outside / "f1", "outside file\n")
    lay.dir(outside / "d1")
    lay.file(outside / "d1" / "f2", "deeper\n")
    os.symlink("f1", outside / "g")
    os.lchown(outside / "g", lay.who.uid, lay.who.gid)
    lay.file(project / "f1", "inside file\n")


def summary(proc) -> dict:
    out = proc.stdout.decode("utf-8", "replace")
    line = next((l for l in out.splitlines() if l.startswith("SUMMARY ")), None)
    assert line, (out[-3000:], proc.stderr.decode("utf-8", "replace")[-3000:])
    return json.loads(line[8:])


@pytest.fixture
def foreign(lay):
    """A process of the same identity outside the sandbox: the fuzz tries
    to trace it and write its memory (never init or the test runner)."""
    proc = subprocess.Popen(lay.who.prefix() + ["sleep", "600"], stdin=subprocess.DEVNULL)
    yield proc.pid
    os.kill(proc.pid, signal.SIGCONT)  # (the unconfined control may have traced it)
    proc.kill()
    proc.wait()


def test_fuzz_every_trapped_syscall(lay, stress, foreign):
    fuzz = compile_c(FUZZ_C, "fuzz")
    iterations = 200_000 if stress else 12_000
    seeds = (1, 2, 3) if stress else (int.from_bytes(os.urandom(4), "little") | 1,)
    fixture(lay, lay.project, lay.outside)
    rotated = lay.log.with_name(lay.log.name + ".1")  # the log's rotated part, opened with it
    for name in (lay.log, rotated):
        name.touch()
        os.chown(name, lay.who.uid, lay.who.gid)
    skip = ("proj", "denials.jsonl", "denials.jsonl.1")
    for seed in seeds:
        before = snapshot(lay.base, skip)
        started = lay.start([fuzz, lay.project, lay.outside, seed, iterations, foreign, "confined"])
        started.sample_rss()
        proc = started.wait(timeout=900 if stress else 150)
        assert proc.returncode == 0, (seed, proc.returncode, proc.stderr[-3000:])
        result = summary(proc)
        changes = diff(before, snapshot(lay.base, skip))
        if changes:
            figure("escapes", len(changes))
        assert not changes, (seed, changes[:20])
        assert result["anomalies"] == 0 and result["supervisor_touched"] == 0, (seed, result)
        assert b"FINAL ok out-denied" in proc.stdout, (seed, proc.stdout[-500:])
        assert (lay.project / "final").read_text() == "final\n"
        assert proc_state(foreign) in ("S", "R"), "the process outside the sandbox was stopped or traced"
        figure("fuzz_calls", iterations)
        figure("writes_checked", 1)
        calls = result["calls"]
        # the fuzz really reached the supervisor: many calls of every kind,
        # and inside the project a good share succeeded
        assert sum(c["ok"] for c in calls.values()) > iterations // 50, calls
        assert all(sum(v for v in c.values()) > iterations // 200 for c in calls.values()), calls
        no_traceback(proc)  # (found here once: open flags with bit 31 set raised OverflowError)
    # the control: the same program without peninsula does change things
    # outside (so the comparison above could fail)
    ctl = lay.dir(lay.base / "ctl")
    ctl_proj, ctl_out = lay.dir(ctl / "proj"), lay.dir(ctl / "outside")
    fixture(lay, ctl_proj, ctl_out)
    before = snapshot(ctl, ("proj",))
    proc = lay.plain([fuzz, ctl_proj, ctl_out, seeds[0], 3000, foreign, "control"], cwd=ctl_proj, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert diff(before, snapshot(ctl, ("proj",))), "the fuzz never reaches outside even unconfined"


def test_device_inode_metadata_is_not_writable(lay_root):
    """/dev/null and friends are writable for their contents, but their
    inodes (mode, owner, times) are the host's: a confined root process
    must not chmod, chown or touch them. Each call here sets the value the
    node already has, so a failing run changes nothing that matters."""
    lay = lay_root
    body = (
        "import os, json\n"
        "res = {}\n"
        "for dev in ('/dev/null', '/dev/zero'):\n"
        "    st = os.stat(dev)\n"
        "    for name, fn in (('chmod', lambda: os.chmod(dev, st.st_mode & 0o7777)),\n"
        "                     ('chown', lambda: os.chown(dev, st.st_uid, st.st_gid)),\n"
        "                     ('utime', lambda: os.utime(dev, ns=(st.st_atime_ns, st.st_mtime_ns)))):\n"
        "        try:\n"
        "            fn(); res[dev + ' ' + name] = 'OK'\n"
        "        except OSError as e:\n"
        "            res[dev + ' ' + name] = e.strerror\n"
        "    with open(dev, 'w') as f:\n"
        "        f.write('')\n"
        "    res[dev + ' write'] = 'OK'\n"
        "print('RESULT ' + json.dumps(res))\n"
    )
    script = lay.script(body, "devmeta.py")
    control = lay.plain([SYSTEM_PYTHON, script])
    assert b'"/dev/null chmod": "OK"' in control.stdout, control  # root may, unconfined
    proc = lay.run([SYSTEM_PYTHON, script])
    no_traceback(proc)
    result = json.loads(next(l for l in proc.stdout.decode().splitlines() if l.startswith("RESULT "))[7:])
    assert result["/dev/null write"] == "OK" and result["/dev/zero write"] == "OK"  # contents: allowed
    allowed = {k: v for k, v in result.items() if not k.endswith("write") and v == "OK"}
    if allowed:
        figure("escapes", len(allowed))
    assert not allowed, f"a confined process changed host device inodes: {sorted(allowed)}"


PROJECT_ROOT_OPS = r'''
import errno, json, os, sys
proj, tmpdir = sys.argv[1], sys.argv[2]
parent = os.path.dirname(proj)
res = {}
def attempt(name, fn):
    try:
        fn()
        res[name] = "OK"
    except OSError as e:
        res[name] = errno.errorcode[e.errno]
    # put things back for the next attempt (unconfined runs really do them)
    if not os.path.isdir(proj):
        for cand in (parent + "/moved", tmpdir + "/x"):
            if os.path.isdir(cand):
                os.rename(cand, proj)
                break
        else:
            os.mkdir(proj)
    os.makedirs(tmpdir + "/x", exist_ok=True)
os.makedirs(tmpdir + "/x", exist_ok=True)
attempt("rmdir_project", lambda: os.rmdir(proj))
attempt("rmdir_project_via_cwd", lambda: os.rmdir("/proc/self/cwd/../" + os.path.basename(proj)))
attempt("rename_project_away", lambda: os.rename(proj, parent + "/moved"))
attempt("rename_tmp_dir_over_project", lambda: os.rename(tmpdir + "/x", proj))
def exchange():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, (tmpdir + "/x").encode(), -100, proj.encode(), 2) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
attempt("exchange_tmp_dir_with_project", exchange)
attempt("chmod_project_root", lambda: os.chmod(proj, 0o700))
print("RESULT " + json.dumps(res))
'''


def test_the_project_directory_itself_stays(lay):
    """The project's own entry lives in its parent, outside the project:
    a confined process may change what is in the project, not remove,
    rename or replace the project directory itself (an empty project
    makes rmdir and rename-over possible). Unconfined, each works."""
    script = lay.script(PROJECT_ROOT_OPS, "project_root_ops.py")
    results = {}
    for kind in ("control", "confined"):
        holder = lay.dir(lay.base / f"root-{kind}")
        proj = lay.dir(holder / "proj")  # empty
        tmpdir = Path(f"/var/tmp/peninsula-rel-{os.getpid()}-{lay.who.name}-{kind}")
        lay.dir(tmpdir)
        try:
            before = snapshot(holder, ("proj",))
            if kind == "control":
                proc = lay.plain([SYSTEM_PYTHON, script, proj, tmpdir], cwd=proj)
            else:
                proc = lay.run([SYSTEM_PYTHON, script, proj, tmpdir], project=proj, cwd=proj)
                no_traceback(proc)
            assert proc.returncode == 0, proc.stderr[-2000:]
            results[kind] = json.loads(next(l for l in proc.stdout.decode().splitlines() if l.startswith("RESULT "))[7:])
            if kind == "confined":
                changes = diff(before, snapshot(holder, ("proj",)))
                assert not changes, changes
        finally:
            subprocess.run(["rm", "-rf", str(tmpdir)])
    control, confined = results["control"], results["confined"]
    assert all(v == "OK" for k, v in control.items()), control
    assert confined["chmod_project_root"] == "OK"  # the project dir's own inode is the project's
    wrong = {k: v for k, v in confined.items() if k != "chmod_project_root" and v not in ("EACCES", "EPERM")}
    if wrong:
        figure("escapes", len(wrong))
    assert not wrong, f"the project directory itself could be removed or replaced: {wrong}"
