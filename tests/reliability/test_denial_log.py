"""The denial log stays bounded under a flood of refusals.

A confined C loop is refused 100,000 times (a million with --stress):
identical refusals collapse into counted summaries, distinct ones are all
kept, the log and its rotated part stay under the cap, and the
supervisor's memory does not grow with the number of refusals.
"""

from __future__ import annotations

import json

from .conftest import SYSTEM_PYTHON, compile_c, figure, no_traceback

# argv: dir distinct total. Tries to create dir/f<i % distinct> for i in
# [0, total); prints how many were refused with EACCES and how many
# succeeded (0 when confined, total without peninsula).
FLOOD_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    long distinct = atol(argv[2]), total = atol(argv[3]), refused = 0, created = 0, other = 0;
    char path[4096];
    for (long i = 0; i < total; i++) {
        snprintf(path, sizeof path, "%s/f%ld", argv[1], i % distinct);
        int fd = open(path, O_WRONLY | O_CREAT, 0644);
        if (fd >= 0) { created++; close(fd); unlink(path); }
        else if (errno == EACCES) refused++;
        else other++;
    }
    printf("refused %ld created %ld other %ld\n", refused, created, other);
    return 0;
}
"""


def log_lines(lay) -> list[dict]:
    out = []
    for path in (lay.log.with_name(lay.log.name + ".1"), lay.log):
        if path.exists():
            out += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return out


def log_size(lay) -> int:
    rotated = lay.log.with_name(lay.log.name + ".1")
    return sum(p.stat().st_size for p in (lay.log, rotated) if p.exists())


def flood(lay, distinct: int, total: int, options=()):
    loop = compile_c(FLOOD_C, "flood")
    started = lay.start([loop, lay.outside, distinct, total], options, verbose=False)
    sampler = started.sample_rss()
    proc = started.wait(timeout=1800)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.decode().split() == ["refused", str(total), "created", "0", "other", "0"], proc.stdout
    early, late = sampler.early_late()
    figure("denials_checked", total)
    return sampler, early, late


def test_control_the_loop_creates_without_peninsula(lay):
    loop = compile_c(FLOOD_C, "flood")
    proc = lay.plain([loop, lay.outside, 10, 100])
    assert proc.stdout.decode().split() == ["refused", "0", "created", "100", "other", "0"], proc.stdout


# The big flood runs as the plain user only: at ~300 us a refusal (the
# supervisor's path work) 100,000 take half a minute; root's run of the
# same code is the rotation test below.
def test_identical_refusals_collapse_and_every_path_is_kept(lay_user, stress):
    lay = lay_user
    total, distinct = (1_000_000 if stress else 100_000), 50
    sampler, early, late = flood(lay, distinct, total)
    lines = log_lines(lay)
    by_path: dict[str, int] = {}
    for entry in lines:
        by_path[entry["path"]] = by_path.get(entry["path"], 0) + entry.get("repeated", 1)
    # Every distinct refusal is there, and the counts add up to every refusal.
    assert sorted(by_path) == sorted(str(lay.outside / f"f{i}") for i in range(distinct))
    assert set(by_path.values()) == {total // distinct}, by_path
    # The first occurrence of each is its own line; the rest are summaries.
    firsts = [e for e in lines if "repeated" not in e]
    assert len(firsts) == distinct
    size = log_size(lay)
    print(f"flood: {total} refusals, {distinct} paths -> {len(lines)} lines, {size} bytes; "
          f"supervisor RSS {early} -> {late} kB (max {sampler.max})")
    assert size < 200_000, size  # ~245 B a refusal would be 24 MB
    assert late - early < 2048, (early, late, sampler.samples[::50])


def test_distinct_refusals_rotate_under_the_cap(lay, stress):
    # ~250 B per distinct refusal: 5,000 of them are about ten times a
    # 128K cap (the default cap, 8M, is the same code with a bigger number).
    total, cap = (200_000, 4 << 20) if stress else (5_000, 128 << 10)
    sampler, early, late = flood(lay, total, total, ["--log-max-size", cap])
    size = log_size(lay)
    print(f"rotation: {total} distinct refusals -> {size} bytes (cap {cap}); "
          f"supervisor RSS {early} -> {late} kB (max {sampler.max})")
    assert size <= cap + 4096, size
    assert lay.log.with_name(lay.log.name + ".1").stat().st_size > 0, "never rotated"
    # What is kept is the newest refusals, without a gap, the last one included.
    numbers = [int(e["path"].rsplit("/f", 1)[1]) for e in log_lines(lay)]
    assert numbers == list(range(numbers[0], total)), (numbers[:3], numbers[-3:])
    if stress:  # long enough for the remembered-refusal tables to fill first
        assert late - early < 2048, (early, late, sampler.samples[::50])
    # `peninsula log` reads across the rotated part.
    shown = lay.who.run([SYSTEM_PYTHON, "-m", "peninsula", "log", "--json", "-n", str(len(numbers)),
                         "--file", lay.log])
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout.splitlines()) == len(numbers)
    assert json.loads(shown.stdout.splitlines()[0])["path"].endswith(f"/f{numbers[0]}")


def test_peninsula_log_shows_the_repeat_count(lay):
    flood(lay, 1, 500)
    shown = lay.who.run([SYSTEM_PYTHON, "-m", "peninsula", "log", "--file", lay.log])
    text = shown.stdout.decode()
    assert shown.returncode == 0, shown.stderr
    assert text.count(str(lay.outside / "f0")) == 2, text  # the first, and the summary of the rest
    assert "(499 more times, the last shown)" in text, text


def test_log_max_size_below_the_minimum_is_refused(lay):
    proc = lay.run(["true"], ["--log-max-size", "1K"], verbose=False)
    assert proc.returncode == 125
    assert b"--log-max-size 1024: below the least useful cap, 64K" in proc.stderr, proc.stderr
