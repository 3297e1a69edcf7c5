"""Invariant 6: when the supervisor dies, trapped syscalls fail with ENOSYS,
nothing more is written, and `peninsula run` exits 123 and says so."""

import json
import os
import signal
import subprocess
import time

from .conftest import SYSTEM_PYTHON

BODY = r'''
import time
P = sys.argv[1]
print("PPID", os.getppid(), flush=True)
# before: the supervisor answers
attempt("before_open", sc, "open", P + "/before", os.O_CREAT | os.O_WRONLY, 0o644)
print("READY", flush=True)
sys.stdin.readline()          # the test kills the supervisor, then says go
deadline = time.monotonic() + 3
i = 0
seen = {}
while time.monotonic() < deadline:
    for name, fn in (
        ("open", lambda: sc("open", P + "/after%d" % i, os.O_CREAT | os.O_WRONLY, 0o644)),
        ("openat_existing", lambda: sc("openat", AT_FDCWD, P + "/before", os.O_WRONLY | os.O_TRUNC)),
        ("mkdir", lambda: sc("mkdir", P + "/dir%d" % i, 0o755)),
        ("unlink", lambda: sc("unlink", P + "/before")),
        ("rename", lambda: sc("rename", P + "/before", P + "/renamed")),
        ("chmod", lambda: sc("chmod", P + "/before", 0o777)),
        ("symlink", lambda: sc("symlink", "x", P + "/sym%d" % i)),
    ):
        try:
            fn()
            seen[name] = "OK"
        except OSError as e:
            seen.setdefault(name, errno.errorcode[e.errno])
    i += 1
    time.sleep(0.01)
RESULTS.update({"after_" + k: v for k, v in seen.items()})
RESULTS["x_rounds"] = i
attempt("read_still_works", lambda: open("/etc/hostname").read())
attempt("stdout_still_works", lambda: sys.stdout.write(""))
done()
'''


def test_supervisor_death_fails_closed(box):
    script = box.script(BODY)
    cmd = box.who.prefix() + [SYSTEM_PYTHON, "-m", "peninsula", "run", "--project", str(box.project),
                              "--log", str(box.log), "--", SYSTEM_PYTHON, str(script), str(box.project)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=box.project, env=box.who.env())
    try:
        ppid = int(proc.stdout.readline().split()[1])
        assert proc.stdout.readline().strip() == b"READY"
        with open(f"/proc/{ppid}/cmdline", "rb") as handle:
            assert b"peninsula" in handle.read()  # the supervisor, not some other parent
        assert (box.project / "before").exists()
        os.kill(ppid, signal.SIGKILL)
        for _ in range(100):
            try:
                if open(f"/proc/{ppid}/stat").read().split(") ")[1][0] == "Z":
                    break
            except (FileNotFoundError, ProcessLookupError):
                break  # already reaped
            time.sleep(0.02)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = [l for l in out.decode().splitlines() if l.startswith("RESULT ")]
    assert line, (out, err)
    result = json.loads(line[-1][7:])
    assert result["before_open"] == "OK"
    for op in ("open", "openat_existing", "mkdir", "unlink", "rename", "chmod", "symlink"):
        assert result["after_" + op] == "ENOSYS", (op, result)
    assert result["x_rounds"] > 10
    assert result["read_still_works"] == "OK" and result["stdout_still_works"] == "OK"
    # nothing was written after the kill
    assert sorted(os.listdir(box.project)) == ["before"]
    assert os.stat(box.project / "before").st_mode & 0o777 == 0o644
    assert proc.returncode == 123, (proc.returncode, err)
    assert b"the supervisor died" in err and b"ENOSYS" in err


CHURN = r'''
import random, signal, time
P, O = sys.argv[1], sys.argv[2]
C = os.O_CREAT | os.O_WRONLY

def child_loop(n):
    if n % 3 == 0:
        # a fast timer: syscalls get interrupted mid-request
        signal.signal(signal.SIGALRM, lambda *a: None)
        signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
    i = 0
    while True:
        name = "%s/c%d_%d" % (P, os.getpid(), i % 50)
        for fn in (lambda: os.close(sc("open", name, C, 0o644)), lambda: sc("unlink", name),
                   lambda: sc("mkdir", name, 0o755), lambda: sc("rmdir", name),
                   lambda: sc("open", O + "/never%d" % i, C, 0o644), lambda: sc("open", ctypes.c_void_p(8), C, 0),
                   lambda: sc("rename", P + "/nope", O + "/nope")):
            try:
                fn()
            except OSError:
                pass
        i += 1

def spawn(n):
    pid = os.fork()
    if pid == 0:
        try:
            child_loop(n)
        finally:
            os._exit(0)
    return pid

# a writer blocked on a FIFO open (served by a supervisor thread), then killed
os.mkfifo(P + "/fifo")
fifo_writer = os.fork()
if fifo_writer == 0:
    os.open(P + "/fifo", os.O_WRONLY)
    os._exit(0)
children = [spawn(n) for n in range(8)]
time.sleep(0.2)
os.kill(fifo_writer, signal.SIGKILL)
os.waitpid(fifo_writer, 0)
deadline = time.monotonic() + 4
kills = 0
while time.monotonic() < deadline:
    time.sleep(random.uniform(0.001, 0.02))
    k = random.randrange(len(children))
    os.kill(children[k], signal.SIGKILL)
    os.waitpid(children[k], 0)
    kills += 1
    children[k] = spawn(k)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
RESULTS["x_kills"] = kills
fd = os.open(P + "/fifo", os.O_RDONLY | os.O_NONBLOCK)  # releases the blocked supervisor thread
os.close(fd)
attempt("final_create", sc, "open", P + "/final", C, 0o644)
attempt("final_mkdir", sc, "mkdir", P + "/final_dir", 0o755)
attempt("final_outside", sc, "open", O + "/final", C, 0o644)
done()
'''


def test_dying_and_interrupted_targets_do_not_hurt_the_supervisor(box):
    """Targets killed mid-request, interrupted by a 0.5 ms timer, passing
    bad pointers, or killed while their FIFO open waits in a supervisor
    thread: the supervisor keeps serving, and nothing lands outside."""
    from .conftest import snapshot
    before = snapshot(box.outside)
    result = box.probe(CHURN, box.project, box.outside, options=("--verbose", "--quiet"), timeout=120)
    proc = result["_proc"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["x_kills"] > 50
    assert result["final_create"] == result["final_mkdir"] == "OK"
    assert result["final_outside"] == "EACCES"
    assert b"Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert snapshot(box.outside) == before


ZERO = r'''
import time
P = sys.argv[1]
print("PPID", os.getppid(), flush=True)
sys.stdin.readline()
bad = n = 0
t = time.monotonic()
while time.monotonic() - t < 2.5:
    fd = os.open(P + "/f%d" % (n % 20), os.O_CREAT | os.O_WRONLY, 0o644)
    if fd in (0, 1, 2):
        bad += 1   # an open answered with a number the target already had
    else:
        os.close(fd)
    n += 1
RESULTS.update(n=n, bad=bad)
done()
'''


def test_supervisor_stopped_and_continued(box):
    """SIGSTOP/SIGCONT of the supervisor (job control) while opens are being
    answered: every open must get a new fd. With ADDFD+SEND the kernel
    answered some with 0 (stdin) and installed nothing."""
    script = box.script(ZERO)
    cmd = box.who.prefix() + [SYSTEM_PYTHON, "-m", "peninsula", "run", "--project", str(box.project),
                              "--log", str(box.log), "--", SYSTEM_PYTHON, str(script), str(box.project)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=box.project, env=box.who.env())
    cycles = 0
    try:
        sup = int(proc.stdout.readline().split()[1])
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        end = time.monotonic() + 2.5
        while time.monotonic() < end:
            os.kill(sup, signal.SIGSTOP)
            time.sleep(0.0005)
            os.kill(sup, signal.SIGCONT)
            time.sleep(0.001)
            cycles += 1
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = [l for l in out.decode().splitlines() if l.startswith("RESULT ")]
    assert line, (out, err)
    result = json.loads(line[-1][7:])
    assert cycles > 200 and result["n"] > 1000
    assert result["bad"] == 0, result
    assert proc.returncode == 0
