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


FIFO_VICTIMS = r'''
import errno, os, signal, sys, time
proj, k = sys.argv[1], int(sys.argv[2])
journal = os.open(proj + "/journal", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
def say(text):
    os.write(journal, (text + "\n").encode())
kids = []
for i in range(k):
    path = "%s/fifo%d" % (proj, i)
    os.mkfifo(path)
    pid = os.fork()
    if pid == 0:
        os.open(path, os.O_WRONLY)   # no reader, ever: blocks until killed
        os._exit(3)
    kids.append(pid)
say("forked")
while not os.path.exists(proj + "/go"):
    time.sleep(0.01)
for pid in kids:
    os.kill(pid, signal.SIGKILL)
for pid in kids:
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
say("killed")
# the supervisor still serves: a FIFO with a reader opens, a file is written
r = os.open(proj + "/fifo0", os.O_RDONLY | os.O_NONBLOCK)
w = os.open(proj + "/fifo0", os.O_WRONLY)
os.write(w, b"through")
assert os.read(r, 100) == b"through"
with open(proj + "/after", "w") as f:
    f.write("after\n")
say("served")
while not os.path.exists(proj + "/end"):
    time.sleep(0.01)
'''


def test_targets_killed_in_a_blocking_fifo_open(lay):
    """Targets SIGKILLed while the supervisor opens a FIFO for them (no
    reader, so the open would wait forever): the supervisor keeps serving
    and does not keep a thread (and an fd) per dead request."""
    k = 12
    script = lay.script(FIFO_VICTIMS, "fifo_victims.py")
    started = lay.start([SYSTEM_PYTHON, script, lay.project, k])
    try:
        sup = started.supervisor()
        wait_for(lambda: "forked" in journal(lay.project), 30, "the FIFO openers")
        wait_for(lambda: len(fifo_threads(sup)) >= k, 30, "every FIFO open to reach the supervisor")
        lay.file(lay.project / "go")
        wait_for(lambda: "served" in journal(lay.project), 30, "the supervisor to serve after the kills")
        assert (lay.project / "after").read_text() == "after\n"
        figure("writes_checked", 1)
        deadline = time.monotonic() + 5
        while fifo_threads(sup) and time.monotonic() < deadline:
            time.sleep(0.05)
        leaked = fifo_threads(sup)
        lay.file(lay.project / "end")
    finally:
        proc = started.wait(timeout=60)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not leaked, f"{len(leaked)} supervisor threads still blocked opening FIFOs for dead processes"


NOFILE_C = r'''
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *name(int e) { return e == EMFILE ? "EMFILE" : e == 0 ? "OK" : strerror(e); }

int main(int argc, char **argv) {
    const char *proj = argv[1];
    char path[4096];
    struct rlimit rl = {16, 16};
    if (setrlimit(RLIMIT_NOFILE, &rl)) { perror("setrlimit"); return 2; }
    int open_fds = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while ((e = readdir(d))) if (e->d_name[0] != '.') open_fds++;
    closedir(d);
    open_fds--;  /* the directory stream's own fd */
    int count = 0, last = -1, err = 0;
    for (int i = 0; i < 64; i++) {
        snprintf(path, sizeof path, "%s/nf/%d", proj, i);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        if (fd < 0) { err = errno; break; }
        last = fd;
        count++;
    }
    /* at the limit: an existing file opened with O_TRUNC must fail and stay whole */
    snprintf(path, sizeof path, "%s/keep", proj);
    errno = 0;
    int t = open(path, O_WRONLY | O_TRUNC);
    int trunc_err = t < 0 ? errno : 0;
    snprintf(path, sizeof path, "%s/nf/mkdir-ok", proj);
    int mk = mkdir(path, 0755) == 0;       /* other trapped calls still work */
    close(last);
    snprintf(path, sizeof path, "%s/nf/after-close", proj);
    int again = open(path, O_CREAT | O_WRONLY, 0644);
    printf("RESULT {\"opened\": %d, \"room\": %d, \"errno\": \"%s\", \"trunc\": \"%s\", \"mkdir\": %d, \"again\": %d}\n",
           count, 16 - open_fds, name(err), name(trunc_err), mk, again >= 0);
    return 0;
}
'''


def test_open_at_rlimit_nofile(lay):
    """A target at RLIMIT_NOFILE: an emulated open fails with EMFILE like
    the kernel's, has no side effect the kernel's would not have (no file
    created, nothing truncated), and the supervisor keeps serving."""
    prog = compile_c(NOFILE_C, "nofile")
    results = {}
    for kind in ("control", "confined"):
        proj = lay.dir(lay.base / f"nofile-{kind}")
        lay.dir(proj / "nf")
        lay.file(proj / "keep", "keep me\n")
        if kind == "control":
            proc = lay.plain([prog, proj], cwd=proj)
        else:
            proc = lay.run([prog, proj], project=proj)
            no_traceback(proc)
        assert proc.returncode == 0, proc.stderr
        line = next(l for l in proc.stdout.decode().splitlines() if l.startswith("RESULT "))
        result = json.loads(line[7:])
        result["tree"] = sorted(os.listdir(proj / "nf"))
        result["keep"] = (proj / "keep").read_text()
        results[kind] = result
    control, confined = results["control"], results["confined"]
    assert control["opened"] == control["room"] and control["errno"] == "EMFILE" and control["trunc"] == "EMFILE"
    assert confined["opened"] == confined["room"] and confined["errno"] == "EMFILE", confined
    assert confined["mkdir"] == 1 and confined["again"] == 1
    problems = []
    if confined["trunc"] != "EMFILE":
        problems.append(f"O_TRUNC open at the limit gave {confined['trunc']}")
    if confined["keep"] != "keep me\n":
        problems.append(f"an O_TRUNC open that failed with EMFILE truncated the file (now {confined['keep']!r})")
    expected = sorted([str(i) for i in range(confined["opened"])] + ["mkdir-ok", "after-close"])
    if confined["tree"] != expected:
        problems.append(f"files left by opens that failed with EMFILE: {sorted(set(confined['tree']) - set(expected))}")
    assert not problems, problems


TIMER_C = r'''
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t ticks;
static void on_alarm(int sig) { (void)sig; ticks++; }

int main(int argc, char **argv) {
    const char *proj = argv[1];
    int n = atoi(argv[2]), restart = atoi(argv[3]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 1000}, {0, 1000}};   /* every 1 ms */
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long eintr = 0, bad = 0;
    char path[4096], buf[32];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/t/%d", proj, i % 64);
        int fd;
        while ((fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644)) < 0) {
            if (errno != EINTR) { bad++; break; }
            eintr++;
        }
        if (fd < 0) continue;
        int len = snprintf(buf, sizeof buf, "%d\n", i);
        ssize_t w;
        while ((w = write(fd, buf, len)) < 0 && errno == EINTR) ;
        if (w != len) bad++;
        close(fd);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("RESULT {\"n\": %d, \"eintr\": %ld, \"bad\": %ld, \"ticks\": %ld, \"secs\": %.3f}\n", n, eintr, bad, (long)ticks, secs);
    return 0;
}
'''


@pytest.mark.parametrize("restart", [0, 1], ids=["no-SA_RESTART", "SA_RESTART"])
def test_target_with_1ms_timer_signal(lay, restart, stress):
    """A target interrupted every millisecond while it loops over trapped
    opens: no livelock, every open completes (retried on EINTR) in bounded
    time, the last write to each file is there."""
    n = 20000 if stress else 2000
    prog = compile_c(TIMER_C, "timer")
    lay.dir(lay.project / "t")
    started = lay.start([prog, lay.project, n, restart])
    started.sample_rss()
    proc = started.wait(timeout=120)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(next(l for l in proc.stdout.decode().splitlines() if l.startswith("RESULT "))[7:])
    assert result["bad"] == 0 and result["n"] == n, result
    assert result["ticks"] > 50, result  # the timer really ran during the opens
    if restart:
        assert result["eintr"] == 0, result  # SA_RESTART: the kernel restarts, nobody sees EINTR
    for j in range(64):
        last = max(i for i in range(n) if i % 64 == j)
        assert (lay.project / "t" / str(j)).read_text() == f"{last}\n"
    figure("writes_checked", n)


DISKFULL = r'''
import errno, json, os, sys
d = sys.argv[1]
res = {}
def attempt(key, fn):
    try:
        fn()
        res[key] = "OK"
    except OSError as e:
        res[key] = errno.errorcode[e.errno]
def big():
    fd = os.open(d + "/big", os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        chunk = b"x" * 65536
        for _ in range(64):          # 4 MiB into 1 MiB
            os.write(fd, chunk)
    finally:
        os.close(fd)
attempt("big_write", big)
count = 0
while True:
    try:
        os.close(os.open("%s/f%d" % (d, count), os.O_CREAT | os.O_WRONLY, 0o644))
        count += 1
    except OSError as e:
        res["create_errno"] = errno.errorcode[e.errno]
        break
    if count > 10000:
        break
res["created"] = count
attempt("mkdir", lambda: os.mkdir(d + "/dir"))
attempt("symlink", lambda: os.symlink("x", d + "/sym"))
os.unlink(d + "/big")
os.unlink("%s/f%d" % (d, count - 1))
attempt("create_after_freeing", lambda: os.close(os.open(d + "/again", os.O_CREAT | os.O_WRONLY, 0o644)))
def refill():
    with open(d + "/again", "wb") as f:
        f.write(b"y" * 100000)
attempt("write_after_freeing", refill)
print("RESULT " + json.dumps(res), flush=True)
'''


def test_disk_full(lay):
    """A 1 MiB tmpfs with few inodes mounted in the project: writes fail
    with ENOSPC exactly as without peninsula (data writes and emulated
    creates alike), and the supervisor keeps serving once room is made."""
    script = lay.script(DISKFULL, "diskfull.py")
    results = {}
    mounts = []
    try:
        for kind in ("control", "confined"):
            small = lay.dir(lay.project / f"small-{kind}")
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M,nr_inodes=40,mode=0755", "tmpfs", small],
                                     capture_output=True)
            if mounted.returncode != 0:
                pytest.skip(f"cannot mount a small tmpfs here (needs root with CAP_SYS_ADMIN): {mounted.stderr!r}")
            mounts.append(small)
            os.chown(small, lay.who.uid, lay.who.gid)
            if kind == "control":
                proc = lay.plain([SYSTEM_PYTHON, script, small])
            else:
                proc = lay.run([SYSTEM_PYTHON, script, small])
                no_traceback(proc)
            assert proc.returncode == 0, proc.stderr[-2000:]
            line = next(l for l in proc.stdout.decode().splitlines() if l.startswith("RESULT "))
            results[kind] = json.loads(line[7:])
            results[kind]["again_size"] = (small / "again").stat().st_size
    finally:
        for small in mounts:
            subprocess.run(["umount", "-l", small])
    control, confined = results["control"], results["confined"]
    assert control["big_write"] == "ENOSPC" and control["create_errno"] == "ENOSPC"
    assert confined == control, (confined, control)
    figure("writes_checked", control["created"] + 2)


FIFO_ALARM_C = r'''
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void on_alarm(int sig) { (void)sig; }

int main(int argc, char **argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fifo", argv[1]);
    unlink(path);
    if (mkfifo(path, 0644)) { perror("mkfifo"); return 2; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;          /* no SA_RESTART: the open gives up */
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    int fd = open(path, O_WRONLY);     /* nobody will ever read */
    printf("RESULT %s\n", fd >= 0 ? "OK" : errno == EINTR ? "EINTR" : strerror(errno));
    return 0;
}
'''


def test_signal_interrupts_a_blocking_fifo_open(lay):
    """The classic alarm() timeout around a blocking open: without
    peninsula the open of a FIFO nobody reads fails with EINTR after a
    second; under peninsula it must not hang forever."""
    prog = compile_c(FIFO_ALARM_C, "fifo_alarm")
    control = lay.plain([prog, lay.project], timeout=30)
    assert control.stdout.strip() == b"RESULT EINTR", control
    started = lay.start([prog, lay.project])
    proc = started.wait(timeout=6)
    no_traceback(proc)
    assert proc.stdout.strip() == b"RESULT EINTR", proc


BAD_CONFIGS = {
    "unknown.toml": ('write = ["/var/tmp"]\n# a comment\nunknown_key = 1\n', 3),
    "syntax.toml": ('write = ["/var/tmp"]\nread_only = \n', 2),
    "type.toml": ('\nwrite = "not a list"\n', 2),
    "bool.toml": ('write = ["/var/tmp"]\n\nread_only = "yes"\n', 3),
    "nonutf8.toml": (b'write = ["\xff\xfe"]\n', 1),
    "duplicate.toml": ('write = ["/var/tmp"]\n[write]\nx = 1\n', 3),
    "negative.toml": ('\n\n\nlimit_nofile = -5\n', 4),
}


def test_bad_config_is_one_clear_message(lay):
    """`peninsula run --config BAD`: exit 125, one line on stderr naming
    the file and the line, and the command is never started."""
    cfg = lay.dir(lay.base / "cfg")
    good = lay.file(cfg / "good.toml", f'write = ["{lay.outside}"]\n')
    ok = lay.run(["sh", "-c", f"echo good > {lay.outside}/via-config"], options=["--config", good], verbose=False)
    assert ok.returncode == 0 and (lay.outside / "via-config").read_text() == "good\n", ok.stderr
    for name, (text, line) in BAD_CONFIGS.items():
        path = lay.file(cfg / name, text)
        marker = lay.project / f"started-{name}"
        proc = lay.run(["sh", "-c", f"touch {marker}"], options=["--config", path], verbose=False, timeout=60)
        lines = [l for l in proc.stderr.decode("utf-8", "replace").splitlines() if l.strip()]
        assert proc.returncode == 125, (name, proc.returncode, lines)
        assert len(lines) == 1, (name, lines)
        assert f"{name}:{line}:" in lines[0], (name, lines)
        assert "Traceback" not in lines[0]
        assert not marker.exists(), name


CONFIG_CHANGER = r'''
import os, sys, time
proj, target = sys.argv[1], sys.argv[2]
open(proj + "/ready", "w").close()
while not os.path.exists(proj + "/go"):
    time.sleep(0.01)
with open(target, "w") as f:       # allowed by the config as it was at start
    f.write("still allowed\n")
print("WROTE", flush=True)
'''


def test_config_broken_while_running_changes_nothing(lay):
    """`peninsula run` reads its config once: breaking the file while the
    command runs neither stops it nor changes what it may write."""
    extra = lay.dir(lay.base / "extra")
    cfg = lay.file(lay.base / "run.toml", f'write = ["{extra}"]\n')
    script = lay.script(CONFIG_CHANGER, "changer.py")
    # the control: without the config the same write is refused
    denied = lay.run([SYSTEM_PYTHON, "-c", f"open('{extra}/x', 'w')"], verbose=False)
    assert denied.returncode != 0 and b"PermissionError" in denied.stderr and not (extra / "x").exists()
    started = lay.start([SYSTEM_PYTHON, script, lay.project, extra / "x"], options=["--config", cfg])
    wait_for(lambda: (lay.project / "ready").exists(), 30, "the command")
    cfg.write_text("write = [\nthis is not toml\n")
    lay.file(lay.project / "go")
    proc = started.wait(timeout=60)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert (extra / "x").read_text() == "still allowed\n"
    assert b"toml" not in proc.stderr.lower(), proc.stderr
