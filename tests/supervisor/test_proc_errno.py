"""The kernel's errno for paths through /proc (invariant 9), on both hot paths.

Each test is a twin: the same probe unconfined (or the untrapped lstat of
the same path inside the sandbox, under the same Landlock domain and
credentials) gives the kernel's answer, and the confined trapped call must
give the same one.
"""

from __future__ import annotations

import os

SELF_FD = r'''
import errno as E
closed = 47  # not open in either run
spellings = ["/proc/self/fd/%d", "//proc/self/fd/%d", "/proc/thread-self/fd/%d", "/proc/%d/fd/%%d" % os.getpid(),
             "/proc/%d/task/%d/fd/%%d" % (os.getpid(), os.getpid()), "/dev/fd/%d", "/proc/self/fd/%d/x"]
for sp in spellings:
    path = sp % closed
    key = sp.replace(str(os.getpid()), "PID")
    attempt("append " + key, sc, "open", path, os.O_WRONLY | os.O_APPEND, 0)
    attempt("create " + key, sc, "open", path, os.O_WRONLY | os.O_CREAT, 0o644)
    attempt("mkdir " + key, sc, "mkdir", path, 0o755)
    attempt("chmod " + key, sc, "chmod", path, 0o644)
done()
'''


def test_a_path_to_an_fd_not_open_is_enoent(box, hot_path):
    """/proc/self/fd/N for an N not open has no such entry (ENOENT); EBADF
    is the answer for a dirfd argument only."""
    control = box.probe(SELF_FD, confined=False)
    confined = box.probe(SELF_FD)
    assert control["append /proc/self/fd/%d"] == "ENOENT"  # the kernel's, measured
    diff = {k: (confined.get(k), v) for k, v in control.items() if not k.startswith("_") and confined.get(k) != v}
    assert not diff, diff


# Under the supervisor's own /proc/PID, where the kernel refuses the target
# the walk (fdinfo needs ptrace access, which Landlock keeps inside the
# target's domain; fd and map_files need search permission, and map_files
# a capability for a START-END name), the supervisor's walk must not answer:
# it gets in (its own thread group), and ENOTDIR against ENOENT would tell
# which fds it holds. The twin is the untrapped lstat of the same path in
# the same sandbox (same Landlock domain and credentials).
SUPERVISOR_PROC = r'''
import errno as E
work = sys.argv[1]
os.chdir(work)
open("file", "w").close()
sup = os.getppid()

def kernel(path, dirfd=AT_FDCWD):
    try:
        os.lstat(path, dir_fd=None if dirfd == AT_FDCWD else dirfd)
        return "OK"
    except OSError as e:
        return E.errorcode[e.errno]

def pair(name, path, dirfd=AT_FDCWD):
    want = kernel(path, dirfd)
    RESULTS["mkdir " + name] = [attempt(name, sc, "mkdirat", dirfd, path, 0o755), want]
    RESULTS["create " + name] = [attempt(name, sc, "openat", dirfd, path, os.O_WRONLY | os.O_CREAT, 0o644), want]

pair("missing", "missing/x")  # a plain missing parent: the fast path's own answer
pair("enotdir", "file/missing/x")
for fd in (0, 999999):
    pair(f"fdinfo {fd}", f"//proc/{sup}/fdinfo/{fd}/x")
    pair(f"fdinfo {fd} one slash", f"/proc/{sup}/fdinfo/{fd}/x")
    pair(f"fd {fd}", f"//proc/{sup}/fd/{fd}/x")
    pair(f"task fdinfo {fd}", f"//proc/{sup}/task/{sup}/fdinfo/{fd}/x")
pair("fdinfo name", f"//proc/{sup}/fdinfo/x")
pair("map_files 1-2", f"//proc/{sup}/map_files/1-2/x")
pair("map_files name", f"//proc/{sup}/map_files/x")
pfd = os.open(f"/proc/{sup}", os.O_RDONLY | os.O_DIRECTORY)
pair("dirfd fdinfo", "fdinfo/999999/x", pfd)
pair("dirfd fdinfo 0", "fdinfo/0/x", pfd)
os.chdir(f"/proc/{sup}")
pair("cwd fdinfo", "fdinfo/999999/x")
os.chdir(work)
# the target's own entries stay its own, however spelled
pair("own fdinfo", "//proc/self/fdinfo/999999/x")
pair("own fdinfo 0", f"/proc/{os.getpid()}/fdinfo/0/x")
done()
'''


def _pairs(result):
    return {k: v for k, v in result.items() if isinstance(v, list)}


def _assert_kernels(box, **kw):
    control = box.probe(SUPERVISOR_PROC, box.dir(box.project / "control", 0o777), confined=False, **kw)
    confined = box.probe(SUPERVISOR_PROC, box.dir(box.project / "confined", 0o777), **kw)
    # positive control: unconfined, each call gives what the walk gives
    assert all(got == want for got, want in _pairs(control).values()), _pairs(control)
    bad = {k: v for k, v in _pairs(confined).items() if v[0] != v[1]}
    assert not bad, bad
    return _pairs(confined)


def test_the_supervisors_proc_entries_give_the_kernels_errno(box, hot_path):
    pairs = _assert_kernels(box)
    # the walk is refused before any fd could show
    assert pairs["mkdir fdinfo 0"] == pairs["mkdir fdinfo 999999"] == ["EACCES", "EACCES"]
    assert pairs["mkdir dirfd fdinfo 0"] == ["EACCES", "EACCES"]
    assert pairs["mkdir own fdinfo 0"] == ["ENOTDIR", "ENOTDIR"]


NOBODY = 65534
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]


def test_a_command_dropped_to_nobody_gets_the_kernels_errno(root_box):
    """A root run whose command drops to nobody: the supervisor acts as
    nobody, yet its own /proc entries (owned by root, mode 0500) let it in."""
    pairs = _assert_kernels(root_box, prefix=SETPRIV)
    assert pairs["mkdir fd 999999"] == pairs["mkdir map_files name"] == ["EACCES", "EACCES"]


# run --unshare-pid: the command has a /proc of its own. "//proc/N/..." (not
# the "/proc/" spelling) names its process N, walked in its mount namespace;
# the twin is the untrapped lstat of the same path inside.
UNSHARED_PROC = r'''
import errno as E, time
kids = []
for i in range(12):
    pid = os.fork()
    if pid == 0:
        time.sleep(30); os._exit(0)
    kids.append(pid)
mine = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
host_missing = [int(n) for n in sys.argv[1].split(",") if n]
target = next((n for n in host_missing if n in mine), 0)
RESULTS["target"] = target
for name, path in (("mkdir", f"//proc/{target}/fdinfo/0/x"), ("create", f"//proc/{target}/fdinfo/0/x"),
                   ("missing", f"//proc/{target}/nothing/x")):
    try:
        os.lstat(path); want = "OK"
    except OSError as e:
        want = E.errorcode[e.errno]
    if name == "create":
        got = attempt(name, sc, "open", path, os.O_WRONLY | os.O_CREAT, 0o644)
    else:
        got = attempt(name, sc, "mkdir", path, 0o755)
    RESULTS[name] = [got, want]
for k in kids:
    os.kill(k, 9); os.waitpid(k, 0)
done()
'''


def test_unshare_pid_walks_the_commands_own_proc(box, hot_path):
    host = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    missing = [n for n in range(2, 14) if n not in host]
    res = box.probe(UNSHARED_PROC, ",".join(map(str, missing)), options=("--unshare-pid",))
    assert res["target"], res  # a pid the command has and the host has not
    assert res["mkdir"] == ["ENOTDIR", "ENOTDIR"], res  # the command's own view (fdinfo/0 is a file)
    bad = {k: v for k, v in res.items() if isinstance(v, list) and v[0] != v[1]}
    assert not bad, bad
