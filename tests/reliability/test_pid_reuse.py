"""Pid reuse against ptrace's decision (a harness, as root).

ptrace is allowed only on the caller's own descendants, and an allowed
request is answered with CONTINUE, so the kernel looks the pid up again.
The harness makes that pid come round to a process the caller may not
trace, at a chosen point of the supervisor's decision. Inside a fresh pid
namespace, a confined racer forks a child D and asks to PTRACE_SEIZE it; a
holder (root, outside the sandbox) syscall-traces the supervisor and holds
it still at a chosen syscall after it read /proc/D/stat. While it is held,
the harness kills D (a thread of the racer reaps it), sets ns_last_pid so
that the next process in the namespace gets D's pid, and has a confined
sibling of the racer (same Landlock domain, so only peninsula stands
between them, as between a confined command and the shell's other
processes) fork the victim V there. An escape is a victim that has the
racer as its tracer. The positive control: a seize of the sibling's child
succeeds without peninsula and is refused by it.
"""

from __future__ import annotations

import json

from .conftest import SYSTEM_PYTHON, compile_c

# argv: iterations. Per iteration: fork D (pause), print "child D", read a
# line (the holder is on the supervisor); a thread reaps D (the harness
# kills it) and prints "freed D" while the main thread seizes D; print
# "result D RC ERRNO". When the seize took (the main thread traces V now),
# read "probe ADDR" (the harness has stopped V), take V's stop as its
# tracer and try what a tracer does next, printing "probe NAME RC ERRNO"
# for each, then "probed"; read a line (V is killed) and take V's exit.
RACER_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child;

static void *reap(void *arg) {
    (void)arg;
    waitpid(child, NULL, 0);
    printf("freed %d\n", child);
    return NULL;
}

static void probe(const char *name, long rc) {
    printf("probe %s %ld %d\n", name, rc, rc == -1 ? errno : 0);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    char line[64];
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < n; i++) {
        child = fork();
        if (child == 0) { pause(); _exit(0); }
        printf("child %d\n", child);
        if (!fgets(line, sizeof line, stdin)) return 3;
        pthread_t t;
        pthread_create(&t, NULL, reap, NULL);
        long rc = ptrace(PTRACE_SEIZE, child, 0, 0);
        int err = errno;
        pthread_join(t, NULL);
        printf("result %d %ld %d\n", child, rc, err);
        if (rc == 0) {
            if (!fgets(line, sizeof line, stdin)) return 3;
            unsigned long addr = strtoul(line + 6, NULL, 16);
            int status;
            probe("wait", waitpid(child, &status, __WALL));
            struct user_regs_struct regs;
            probe("getregs", ptrace(PTRACE_GETREGS, child, 0, &regs));
            errno = 0;
            long word = ptrace(PTRACE_PEEKDATA, child, addr, 0);
            probe("peekdata", word == -1 && errno ? -1 : 0);
            probe("pokedata", ptrace(PTRACE_POKEDATA, child, addr, 0));
            char byte = 0;
            struct iovec local = {&byte, 1}, remote = {(void *)addr, 1};
            probe("process_vm_writev", process_vm_writev(child, &local, 1, &remote, 1, 0));
            probe("setoptions", ptrace(PTRACE_SETOPTIONS, child, 0, PTRACE_O_EXITKILL));
            probe("cont", ptrace(PTRACE_CONT, child, 0, 0));
            probe("interrupt", ptrace(PTRACE_INTERRUPT, child, 0, 0));
            probe("detach", ptrace(PTRACE_DETACH, child, 0, 0));
            printf("probed\n");
        }
        if (!fgets(line, sizeof line, stdin)) return 3;
        if (rc == 0) waitpid(child, NULL, __WALL);
    }
    return 0;
}
"""

# The confined sibling: forks a victim (pause) for every line on its
# stdin and prints "victim PID".
SPAWNER_C = r"""
#include <stdio.h>
#include <unistd.h>

int main(void) {
    char line[64];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        pid_t v = fork();
        if (v == 0) { pause(); _exit(0); }
        printf("victim %d\n", v);
    }
    return 0;
}
"""

# argv: supervisor pid, D, where. Syscall-traces every thread of the
# supervisor, prints "attached", and holds the thread that opens
# /proc/D/stat at the entry of its first later syscall of the kind `where`
# names: "judged" (a poll, or a SECCOMP_IOCTL_NOTIF_ID_VALID or _SEND
# ioctl: the decision is made, the answer not given) or "send" (the SEND
# ioctl that gives the answer). Prints "held NR", reads a line, lets the
# supervisor go (detaching every thread) and prints "released".
HOLDER_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOTIF_SEND 0xC0182101UL
#define NOTIF_ID_VALID 0x40082102UL

struct info {
    uint8_t op, pad[3];
    uint32_t arch;
    uint64_t ip, sp, nr, args[6];
    uint32_t ret_data;
};

static int tids[256], ntids;

static void forget(int tid) {
    for (int i = 0; i < ntids; i++)
        if (tids[i] == tid) tids[i] = tids[--ntids];
}

static int holds(const char *where, uint64_t nr, uint64_t arg1) {
    int send = nr == SYS_ioctl && arg1 == NOTIF_SEND;
    if (strcmp(where, "send") == 0) return send;
    return send || nr == SYS_poll || nr == SYS_ppoll || (nr == SYS_ioctl && arg1 == NOTIF_ID_VALID);
}

static void release(int held) {
    ptrace(PTRACE_DETACH, held, 0, 0);
    int left = ntids - 1;
    for (int i = 0; i < ntids; i++)
        if (tids[i] != held) ptrace(PTRACE_INTERRUPT, tids[i], 0, 0);
    while (left > 0) {
        int status, tid = waitpid(-1, &status, __WALL);
        if (tid < 0) break;
        left--;  /* stopped (detached here) or gone */
        if (WIFSTOPPED(status)) {
            int sig = WSTOPSIG(status);
            int deliver = (sig == (SIGTRAP | 0x80) || status >> 16) ? 0 : sig;
            ptrace(PTRACE_DETACH, tid, 0, deliver);
        }
    }
    printf("released\n");
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    char want[64], path[64], line[16];
    snprintf(want, sizeof want, "/proc/%s/stat", argv[2]);
    snprintf(path, sizeof path, "/proc/%s/task", argv[1]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    DIR *dir = opendir(path);
    if (!dir) return 2;
    struct dirent *entry;
    while ((entry = readdir(dir)) && ntids < 256) {
        int tid = atoi(entry->d_name);
        if (tid <= 0) continue;
        if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD) != 0) {
            if (errno == ESRCH) continue;  /* a thread that has just ended */
            printf("cannot seize %d: %s\n", tid, strerror(errno));
            return 2;
        }
        ptrace(PTRACE_INTERRUPT, tid, 0, 0);
        tids[ntids++] = tid;
    }
    closedir(dir);
    int first_stops = ntids, seen = 0;
    while (1) {
        int status, tid = waitpid(-1, &status, __WALL);
        if (tid < 0) return 4;  /* every thread is gone */
        if (!WIFSTOPPED(status)) { forget(tid); continue; }
        int sig = WSTOPSIG(status), deliver = 0;
        if (sig == (SIGTRAP | 0x80)) {
            struct info info;
            if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof info, &info) > 0 && info.op == 1) {
                if (!seen && info.nr == SYS_openat) {
                    char name[64];
                    size_t size = strlen(want) + 1;
                    struct iovec local = {name, size}, remote = {(void *)info.args[1], size};
                    if (process_vm_readv(tid, &local, 1, &remote, 1, 0) == (ssize_t)size && memcmp(name, want, size) == 0)
                        seen = tid;
                } else if (seen == tid && holds(argv[3], info.nr, info.args[1])) {
                    printf("held %llu\n", (unsigned long long)info.nr);
                    if (!fgets(line, sizeof line, stdin)) return 6;
                    release(tid);
                    return 0;
                }
            }
        } else if (status >> 16) {
            if (first_stops > 0 && --first_stops == 0) printf("attached\n");
        } else {
            deliver = sig;
        }
        ptrace(PTRACE_SYSCALL, tid, 0, deliver);
    }
}
"""

# Runs inside the new pid namespace as root: starts the sandbox, drives the
# race, prints a JSON summary.
HARNESS = r"""
import errno, json, os, signal, subprocess, sys
racer, spawner, holder, project, log, iterations, where = sys.argv[1:8]
iterations = int(iterations)
# The spawner talks to us through fifos in the project (peninsula passes no
# other descriptors to the command).
to_spawner, from_spawner = os.path.join(project, "to-spawner"), os.path.join(project, "from-spawner")
os.mkfifo(to_spawner); os.mkfifo(from_spawner)
# The command: a shell whose two children are the racer and the spawner
# (siblings: neither descends from the other).
script = f'{spawner} < {to_spawner} > {from_spawner} & {racer} {iterations}; wait'
cmd = [sys.executable, "-m", "peninsula", "run", "--quiet", "--project", project, "--log", log, "--", "sh", "-c", script]
proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
spawn_in = open(to_spawner, "w", buffering=1)
spawn_out = open(from_spawner, "r")
stats = {"iterations": 0, "reused": 0, "escapes": 0, "errnos": {}, "held_at": {}, "probes": {}}
def tracer_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("TracerPid:")).split()[1])
def parent(pid):
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
def writable_address(pid):
    with open(f"/proc/{pid}/maps") as f:
        return next(l.split("-")[0] for l in f if l.split()[1].startswith("rw"))
for _ in range(iterations):
    kind, pid = proc.stdout.readline().split()
    assert kind == "child", kind
    pid = int(pid)
    racer_pid = parent(pid)
    sup = parent(parent(racer_pid))  # the process that forked the command (sh)
    hold = subprocess.Popen([holder, str(sup), str(pid), where], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, bufsize=1)
    attached = hold.stdout.readline()
    assert attached == "attached\n", (attached, hold.wait())
    proc.stdin.write("seize\n")
    held = hold.stdout.readline().split()
    assert held and held[0] == "held", hold.wait()
    stats["held_at"][held[1]] = stats["held_at"].get(held[1], 0) + 1
    # The supervisor is held: D goes, and V takes its pid.
    os.kill(pid, signal.SIGKILL)
    assert proc.stdout.readline() == f"freed {pid}\n"
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))
    spawn_in.write("fork\n")
    vpid = int(spawn_out.readline().split()[1])
    hold.stdin.write("go\n")
    assert hold.stdout.readline() == "released\n"
    assert hold.wait(10) == 0
    _, _, rc, err = proc.stdout.readline().split()
    stats["iterations"] += 1
    stats["reused"] += vpid == pid
    key = "0" if rc == "0" else errno.errorcode.get(int(err), err)
    stats["errnos"][key] = stats["errnos"].get(key, 0) + 1
    if tracer_of(vpid) == racer_pid:
        stats["escapes"] += 1  # the racer traces the victim
    if rc == "0":
        os.kill(vpid, signal.SIGSTOP)
        proc.stdin.write(f"probe {writable_address(vpid)}\n")
        for line in iter(proc.stdout.readline, "probed\n"):
            _, name, prc, perr = line.split()
            stats["probes"].setdefault(name, {})
            outcome = "0" if prc != "-1" else errno.errorcode.get(int(perr), perr)
            stats["probes"][name][outcome] = stats["probes"][name].get(outcome, 0) + 1
    os.kill(vpid, signal.SIGKILL)
    proc.stdin.write("next\n")
spawn_in.close()  # the spawner's input ends: the shell's wait returns
proc.stdin.close()
proc.wait(60)
print("STATS " + json.dumps(stats))
"""


def run_harness(root, iterations: int, where: str) -> dict:
    racer = compile_c(RACER_C, "pidreuse-racer", ("-pthread",))
    spawner = compile_c(SPAWNER_C, "pidreuse-spawner")
    holder = compile_c(HOLDER_C, "pidreuse-holder")
    project = root.mkdir(root.base / "proj")
    argv = ["unshare", "--pid", "--fork", "--mount-proc", SYSTEM_PYTHON, "-c", HARNESS,
            racer, spawner, holder, project, root.base / "log", iterations, where]
    proc = root.run(argv, cwd=project, timeout=120)
    line = next((l for l in proc.stdout.decode().splitlines() if l.startswith("STATS ")), None)
    assert line, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    return json.loads(line[6:])


def test_sibling_seize_needs_the_supervisor(root):
    """Control: Landlock lets the racer seize its sibling's child (same
    domain), so without the supervisor's judgement it succeeds, and so do
    a tracer's next requests on the stopped tracee."""
    seize = compile_c(r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
    (void)argc;
    int v = atoi(argv[1]), status;
    long rc = ptrace(PTRACE_SEIZE, v, 0, 0);
    printf("seize %ld\n", rc);
    if (rc == 0 && kill(v, SIGSTOP) == 0 && waitpid(v, &status, __WALL) == v) {
        struct user_regs_struct regs;
        printf("getregs %ld\n", ptrace(PTRACE_GETREGS, v, 0, &regs));
    }
    return 0;
}
""", "pidreuse-seize")
    spawner = compile_c(SPAWNER_C, "pidreuse-spawner")
    project = root.mkdir(root.base / "proj")
    script = f"echo fork | {spawner} > {root.base}/v & wait; read _ v < {root.base}/v; {seize} $v; kill -9 $v"
    plain = root.run(["sh", "-c", script], cwd=project)
    assert b"seize 0" in plain.stdout and b"getregs 0" in plain.stdout, plain.stdout + plain.stderr
    confined = root.peninsula("run", "--quiet", "--project", project, "--log", root.base / "log", "--",
                              "sh", "-c", script, cwd=project)
    assert b"seize -1" in confined.stdout, confined.stdout + confined.stderr


def test_reused_pid_never_inherits_a_seize(root, stress):
    """Held after the decision, before the answer: D is gone and V has its
    pid when the supervisor goes on, so it refuses as the kernel refuses a
    seize of an exited process (EPERM), and V stays untraced."""
    iterations = 2000 if stress else 100
    stats = run_harness(root, iterations, "judged")
    print("pid reuse, held after the decision:", json.dumps(stats))
    assert stats["iterations"] == iterations
    # The harness works: the victim took D's pid every time.
    assert stats["reused"] == iterations, stats
    assert stats["escapes"] == 0, stats
    assert stats["errnos"] == {"EPERM": iterations}, stats


# What a tracer asks after attaching; each is the supervisor's to judge.
PROBES = ("getregs", "peekdata", "pokedata", "process_vm_writev", "setoptions", "cont", "interrupt", "detach")


def test_a_seize_answered_into_reuse_gets_no_further(root):
    """Held at the answer itself (the SEND ioctl, after the pidfd said D
    still ran): D is gone and V has its pid when the kernel looks it up, so
    the seize lands on V. That window is not closed, only narrow (see
    pinned); what it gives is a tracer link and nothing through it: V is
    stopped for the racer, yet every request a tracer makes next is judged
    on V, not a descendant, and refused."""
    iterations = 5
    stats = run_harness(root, iterations, "send")
    print("pid reuse, held at the answer:", json.dumps(stats))
    assert stats["reused"] == iterations, stats
    assert stats["held_at"] == {"16": iterations}, stats  # the ioctl
    assert stats["escapes"] == iterations, stats
    assert stats["probes"].pop("wait") == {"0": iterations}, stats  # V stopped for its tracer
    assert stats["probes"] == {name: {"EPERM": iterations} for name in PROBES}, stats
