"""Invariant 2: a multithreaded path-swap attacker gets zero escapes.

A C program flips path buffers between names inside the project and the
same names outside while other threads call open(O_CREAT), openat, mkdir,
rename, link, symlink, chmod and truncate on them, and one thread swaps a
directory in the project with a symlink to the outside
(RENAME_EXCHANGE). A helper outside the sandbox swaps another pair on
disk at the same time. Without peninsula the same program writes outside
at once (the control); under peninsula nothing outside may change."""

import os
import re
import subprocess
from pathlib import Path

from .conftest import compile_c, listing, snapshot

SOURCE = (Path(__file__).parent / "race.c").read_text()

SWAPPER = r'''
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    time_t end = time(NULL) + atoi(argv[3]);
    long n = 0;
    while (time(NULL) < end)
        if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], 2) == 0) n++;
    printf("SWAPS %ld\n", n);
    return 0;
}
'''


def _layout(box, inside: Path, outside: Path):
    box.dir(inside)
    box.dir(outside)
    box.dir(inside / "sw")
    os.symlink(outside, inside / "sw_alt")
    box.own(inside / "sw_alt")
    # a second pair that only an unconfined process swaps
    box.dir(inside / "ext")
    os.symlink(outside, inside / "ext_alt")
    box.own(inside / "ext_alt")


def _figures(out: bytes) -> dict:
    m = re.search(rb"RACE attempts=(\d+) successes=(\d+) flips=(\d+) swaps=(\d+) seconds=([\d.]+)", out)
    assert m, out
    return dict(zip(("attempts", "successes", "flips", "swaps", "seconds"), (int(m[1]), int(m[2]), int(m[3]), int(m[4]), float(m[5]))))


def test_path_swap_race(box, stress):
    race = compile_c(SOURCE, "race", ("-pthread",))
    swapper = compile_c(SWAPPER, "swapper")
    seconds = 60 if stress else 10
    # same-length names so flipped buffers stay well-formed
    inside, outside = box.base / "race_in", box.base / "race_ot"
    _layout(box, inside, outside)

    # control: without peninsula the attacker writes outside at once
    c_in, c_out = box.base / "ctl_in", box.base / "ctl_ot"
    _layout(box, c_in, c_out)
    for _ in range(5):  # a second's run writes a few names outside, rarely none: retry before calling it unreal
        proc = box.who.run([race, c_in, c_out, 1])
        assert proc.returncode == 0, proc.stderr
        if listing(c_out):
            break
    assert listing(c_out), "five control runs wrote nothing outside: the attack is not real"

    before = snapshot(outside)
    ext = subprocess.Popen(box.who.prefix() + [str(swapper), str(inside / "ext"), str(inside / "ext_alt"), str(seconds + 2)],
                           stdout=subprocess.PIPE)
    proc = box.who.peninsula("run", "--project", inside, "--log", box.log, "--quiet", "--",
                             race, inside, outside, seconds, cwd=inside, env=box.env, timeout=seconds + 120)
    ext_out, _ = ext.communicate(timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = _figures(proc.stdout)
    print(f"\nrace as {box.who.name}: {figures}, external swaps: {ext_out.decode().strip()}")
    assert figures["seconds"] >= seconds
    assert figures["flips"] > 1000 and figures["swaps"] > 100
    assert figures["successes"] > 100, "nothing succeeded inside: the run proves nothing"
    assert figures["attempts"] > figures["successes"], "nothing was refused: the flips never reached outside"
    assert snapshot(outside) == before, f"escape: {listing(outside)}"
