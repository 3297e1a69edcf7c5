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
