"""Load: two confined builds at once, and a fork storm.

Every allowed write must land intact (checked by content), every write
outside the project must fail (and change nothing), nothing may hang
(timeouts on everything) and the supervisor's memory must stay bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from .conftest import FIGURES, compile_c, denials, figure, no_traceback, snapshot

GEN = r'''
import hashlib, json, os, sys
n, tag, outside = int(sys.argv[1]), sys.argv[2], sys.argv[3]
denied = leaked = 0
for i in range(n):
    d = "data/d%d" % (i % 40)
    os.makedirs(d, exist_ok=True)
    body = (hashlib.sha256(("%s:%d" % (tag, i)).encode()).hexdigest() * (1 + i % 7) + "\n").encode()
    with open("%s/f%d.txt" % (d, i), "wb") as f:
        f.write(body)
    if i % 50 == 0:
        try:
            with open("%s/leak%d" % (outside, i), "wb") as f:
                f.write(b"x")
            leaked += 1
        except PermissionError:
            denied += 1
print("GEN " + json.dumps({"denied": denied, "leaked": leaked}), flush=True)
'''

MAKEFILE = r'''
SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,build/%.o,$(SRCS))
app: $(OBJS) main.c
	$(CC) -o $@ main.c $(OBJS)
build/%.o: src/%.c | build
	$(CC) -O0 -c -o $@ $<
	printf '%s\n' '$@' > build/$*.stamp
	if { printf x > $(OUTSIDE)/$*.leak; } 2>/dev/null; then echo LEAK $*; fi
build:
	mkdir -p build
'''

DRIVER = r'''
set -e
make -j4 -s OUTSIDE="$1"
./app > app.out
python3 gen.py "$2" "$3" "$1"
git init -q .
git add -A
git -c user.name=load -c user.email=load@example.invalid commit -q -m load
echo DONE
'''


def expected_sum(n: int) -> int:
    return sum(i * 7 + 3 for i in range(n))


def data_body(tag: str, i: int) -> bytes:
    return (hashlib.sha256(f"{tag}:{i}".encode()).hexdigest() * (1 + i % 7) + "\n").encode()


def make_project(lay, project, nsrc: int) -> None:
    lay.dir(project / "src")
    for i in range(nsrc):
        lay.file(project / "src" / f"f{i}.c", f"int f{i}(void) {{ return {i * 7 + 3}; }}\n")
    decls = "".join(f"int f{i}(void);\n" for i in range(nsrc))
    calls = " + ".join(f"(long)f{i}()" for i in range(nsrc))
    lay.file(project / "main.c", f"#include <stdio.h>\n{decls}int main(void) {{ printf(\"%ld\\n\", {calls}); return 0; }}\n")
    lay.file(project / "Makefile", MAKEFILE)
    lay.file(project / "gen.py", GEN)
    lay.file(project / "driver.sh", DRIVER)


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_project(lay, project, outside, nsrc: int, ndata: int, tag: str, proc) -> int:
    """Every write of the build landed intact; returns how many were checked."""
    out = proc.stdout.decode("utf-8", "replace")
    assert "DONE" in out and "LEAK" not in out, out[-3000:] + proc.stderr.decode("utf-8", "replace")[-3000:]
    checked = 0
    assert (project / "app.out").read_text() == f"{expected_sum(nsrc)}\n"
    for i in range(nsrc):
        assert (project / "build" / f"f{i}.o").stat().st_size > 0
        assert (project / "build" / f"f{i}.stamp").read_text() == f"build/f{i}.o\n"
        checked += 2
    checked += 2  # app, app.out
    staged = {}
    ls = lay.plain(["git", "ls-files", "-s"], cwd=project)
    for line in ls.stdout.decode().splitlines():
        meta, path = line.split("\t", 1)
        staged[path] = meta.split()[1]
    for i in range(ndata):
        rel = f"data/d{i % 40}/f{i}.txt"
        body = data_body(tag, i)
        assert (project / rel).read_bytes() == body, rel
        assert staged[rel] == git_blob(body), rel  # git's object store got it intact
        checked += 2
    fsck = lay.plain(["git", "fsck", "--full", "--strict"], cwd=project, timeout=300)
    assert fsck.returncode == 0, fsck.stderr
    gen = json.loads(next(l for l in out.splitlines() if l.startswith("GEN "))[4:])
    assert gen == {"denied": len(range(0, ndata, 50)), "leaked": 0}
    return checked


def test_two_builds_and_git_add_at_once(lay_root, lay_user, stress):
    """Two `peninsula run`s at once (root and the unprivileged user): each
    runs make -j4 over many tiny C files, then writes and `git add`s
    thousands of files, trying writes outside all along."""
    nsrc, ndata = (400, 8000) if stress else (60, 1500)
    runs = []
    for lay, tag in ((lay_root, "root"), (lay_user, "user")):
        make_project(lay, lay.project, nsrc)
        before = snapshot(lay.outside)
        started = lay.start(["sh", "driver.sh", lay.outside, ndata, tag], verbose=True, env={"GIT_CONFIG_NOSYSTEM": "1"})
        started.sample_rss()
        runs.append((lay, tag, started, before))
    for lay, tag, started, before in runs:
        proc = started.wait(timeout=1200 if stress else 200)
        no_traceback(proc)
        assert proc.returncode == 0, proc.stderr[-3000:]
        figure("writes_checked", check_project(lay, lay.project, lay.outside, nsrc, ndata, tag, proc))
        after = snapshot(lay.outside)
        if after != before:
            figure("escapes", 1)
        assert after == before, "something outside the project changed"
        logged = [d for d in denials(lay.log) if d["path"].startswith(str(lay.outside))]
        attempted = nsrc + len(range(0, ndata, 50))
        assert len(logged) == attempted, (len(logged), attempted)
        figure("denials_checked", attempted)
        # the same writes work where allowed: the outside dir is the user's own
        probe = lay.plain(["sh", "-c", f"printf x > {lay.outside}/probe && cat {lay.outside}/probe"])
        assert probe.stdout == b"x"
        os.unlink(lay.outside / "probe")
        early, late = started.sampler.early_late()
        assert started.sampler.max < 200_000, started.sampler.samples[-20:]
        assert late - early < 30_000, (early, late)


STORM_C = r'''
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void body(char *buf, size_t size, int i) {
    snprintf(buf, size, "storm %d %08x\n", i, (unsigned)(i * 2654435761u));
}

int main(int argc, char **argv) {
    const char *proj = argv[1], *out = argv[2];
    int n = atoi(argv[3]), every = atoi(argv[4]);
    pid_t *kids = calloc(n, sizeof(pid_t));
    int status_count[256] = {0}, victims = 0, retries = 0, signaled = 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0) {            /* out of processes: reap one, try again */
            int st;
            if (errno != EAGAIN || wait(&st) < 0) { perror("fork"); return 99; }
            for (int k = 0; k < i; k++) if (kids[k] > 0 && waitpid(kids[k], &st, WNOHANG) > 0) { kids[k] = -1; break; }
            retries++; i--; continue;
        }
        if (p == 0) {
            char path[4096], buf[128];
            if (every && i % every == every - 1) {
                /* a victim: trapped opens until it is killed mid-request */
                for (unsigned j = 0;; j++) {
                    snprintf(path, sizeof path, "%s/victim/%d-%u", proj, i, j % 4);
                    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
                    if (fd >= 0) close(fd);
                }
            }
            body(buf, sizeof buf, i);
            snprintf(path, sizeof path, "%s/storm/%d", proj, i);
            int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
            if (fd < 0) _exit(10);
            if (write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf)) _exit(11);
            if (close(fd)) _exit(12);
            snprintf(path, sizeof path, "%s/%d", out, i);
            fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
            if (fd >= 0) _exit(20);
            if (errno != EACCES) _exit(21);
            _exit(0);
        }
        kids[i] = p;
    }
    for (int i = 0; i < n; i++) {
        if (kids[i] <= 0) continue;
        if (every && i % every == every - 1) { kill(kids[i], SIGKILL); victims++; }
    }
    for (int i = 0; i < n; i++) {
        int st;
        if (kids[i] <= 0) continue;
        if (waitpid(kids[i], &st, 0) < 0) { perror("waitpid"); return 98; }
        if (every && i % every == every - 1) continue;
        if (WIFEXITED(st)) status_count[WEXITSTATUS(st)]++; else signaled++;
    }
    /* the supervisor still serves: a last write */
    char path[4096];
    snprintf(path, sizeof path, "%s/final", proj);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    int final_ok = fd >= 0 && write(fd, "final\n", 6) == 6 && close(fd) == 0;
    printf("RESULT {\"ok\": %d, \"in_failed\": %d, \"short\": %d, \"leaked\": %d, \"wrong_errno\": %d, "
           "\"signaled\": %d, \"victims\": %d, \"retries\": %d, \"final\": %d}\n",
           status_count[0], status_count[10] + status_count[12], status_count[11], status_count[20],
           status_count[21], signaled, victims, retries, final_ok);
    return 0;
}
'''


def test_fork_storm(lay, stress):
    """1,000 short-lived processes in one sandbox, each writing a file in the
    project and trying one outside; every fiftieth process loops on
    trapped opens and is killed mid-request."""
    n, every = (5000, 25) if stress else (1000, 50)
    storm = compile_c(STORM_C, "storm")
    lay.dir(lay.project / "storm")
    lay.dir(lay.project / "victim")
    before = snapshot(lay.outside)
    started = lay.start([storm, lay.project, lay.outside, n, every])
    started.sample_rss()
    proc = started.wait(timeout=600 if stress else 120)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.decode().splitlines() if l.startswith("RESULT "))
    result = json.loads(line[7:])
    victims = len(range(every - 1, n, every))
    assert result == {"ok": n - victims, "in_failed": 0, "short": 0, "leaked": 0, "wrong_errno": 0,
                      "signaled": 0, "victims": victims, "retries": result["retries"], "final": 1}, result
    for i in range(n):
        if i % every == every - 1:
            continue
        assert (lay.project / "storm" / str(i)).read_text() == "storm %d %08x\n" % (i, (i * 2654435761) & 0xFFFFFFFF)
    assert (lay.project / "final").read_text() == "final\n"
    figure("writes_checked", n - victims + 1)
    assert set(os.listdir(lay.project / "victim")) <= {f"{i}-{j}" for i in range(every - 1, n, every) for j in range(4)}
    after = snapshot(lay.outside)
    if after != before:
        figure("escapes", 1)
    assert after == before
    assert len([d for d in denials(lay.log) if d["path"].startswith(str(lay.outside))]) == n - victims
    figure("denials_checked", n - victims)
    # the control: the same program unconfined writes outside as well
    control = lay.plain([storm, lay.project, lay.outside, 20, 0])
    assert b'"leaked": 20' in control.stdout, control.stdout
    early, late = started.sampler.early_late()
    assert started.sampler.max < 200_000 and late - early < 30_000, (early, late, started.sampler.max)


FLOOD_C = r'''
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long rss(pid_t pid) {
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    fclose(f);
    return kb;
}

int main(int argc, char **argv) {
    int n = atoi(argv[2]), denied = 0, wrong = 0;
    long early = -1;
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/denied-%d-with-a-name-long-enough-to-count", argv[1], i);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        if (fd >= 0) close(fd);
        else if (errno == EACCES) denied++;
        else wrong++;
        if (i == 2000) early = rss(getppid());
    }
    printf("RESULT %d %d %ld %ld\n", denied, wrong, early, rss(getppid()));
    return 0;
}
'''


def test_denial_flood_keeps_supervisor_memory_bounded(lay, stress):
    """A confined process that is refused tens of thousands of different
    paths: every one is refused, and the supervisor's memory does not grow
    with their number (what it remembers per path must be bounded)."""
    n = 200_000 if stress else 30_000
    flood = compile_c(FLOOD_C, "flood")
    before = snapshot(lay.outside)
    started = lay.start([flood, lay.outside, n])
    proc = started.wait(timeout=600 if stress else 120)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _, denied, wrong, early, late = proc.stdout.decode().split()
    denied, wrong, early, late = int(denied), int(wrong), int(early), int(late)
    assert denied == n and wrong == 0
    figure("denials_checked", n)
    figure("max_supervisor_rss_kb", late, "max")
    assert snapshot(lay.outside) == before
    assert late - early < 4_000, f"supervisor RSS grew from {early} kB to {late} kB over {n} denials"
