"""Invariant 3 under a race: a hard-linked file renamed onto a name that
another thread is creating must not be opened for writing.

The project holds `a`, a second name of a file outside. A process outside
the sandbox renames it back and forth between `a` and `b` (the supervisor
serialises the sandbox's own renames, and --fast leaves them to the
kernel); threads inside open `b` with O_CREAT (the name is missing one
moment and the hard-linked file the next), and a third opens `a` for
writing directly. An open that yields the outside file's inode is an
escape. Without peninsula such opens succeed at once (the control); under
peninsula none may."""

import os
import subprocess

import pytest

from .conftest import compile_c

SOURCE = r'''
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;
static atomic_long opens, escapes, renames;
static ino_t outside_ino;

static void *renamer(void *arg) {
    (void)arg;
    while (!stop) {
        if (rename("a", "b") == 0) atomic_fetch_add(&renames, 1);
        if (rename("b", "a") == 0) atomic_fetch_add(&renames, 1);
    }
    return NULL;
}

static void *opener(void *arg) {
    const char *name = arg;
    while (!stop) {
        int fd = open(name, O_WRONLY | O_CREAT, 0644);
        if (fd < 0) continue;
        atomic_fetch_add(&opens, 1);
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_ino == outside_ino) atomic_fetch_add(&escapes, 1);
        close(fd);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    struct stat st;
    if (stat(argv[1], &st) != 0) { perror("outside"); return 2; }
    outside_ino = st.st_ino;
    /* argv[3]: "rename", "open" or "both" (the control) */
    int renaming = argv[3][0] != 'o', opening = argv[3][0] != 'r';
    pthread_t t[4];
    if (renaming) pthread_create(&t[0], NULL, renamer, NULL);
    if (opening) {
        pthread_create(&t[1], NULL, opener, "b");
        pthread_create(&t[2], NULL, opener, "b");
        pthread_create(&t[3], NULL, opener, "a");
    }
    sleep(atoi(argv[2]));
    stop = 1;
    for (int i = renaming ? 0 : 1; i < (opening ? 4 : 1); i++) pthread_join(t[i], NULL);
    printf("LINKRACE opens=%ld escapes=%ld renames=%ld\n", opens, escapes, renames);
    return 0;
}
'''


def _figures(out: bytes) -> dict:
    line = [l for l in out.decode().splitlines() if l.startswith("LINKRACE ")]
    assert line, out
    return {k: int(v) for k, v in (item.split("=") for item in line[0].split()[1:])}


def _layout(box, project):
    box.dir(project)
    secret = box.file(box.outside / f"secret-{project.name}", "outside\n")
    os.link(secret, project / "a")
    return secret


@pytest.mark.parametrize("mode", ["emulated", "fast"])
def test_renamed_hard_link_is_not_opened_for_write(box, stress, mode):
    prog = compile_c(SOURCE, "linkrace", ("-pthread",))
    seconds = 20 if stress else 3

    control = box.base / "ctl-link"
    secret = _layout(box, control)
    proc = box.who.run([prog, secret, 1, "both"], cwd=control)
    assert proc.returncode == 0, proc.stderr
    assert _figures(proc.stdout)["escapes"] > 0, "the control opened no hard link: the attack is not real"

    secret = _layout(box, box.project)
    before = os.stat(secret)
    renamer = subprocess.Popen(box.who.prefix() + [str(prog), str(secret), str(seconds + 1), "rename"],
                               cwd=box.project, stdout=subprocess.PIPE)
    options = ("--quiet", "--fast") if mode == "fast" else ("--quiet",)
    proc = box.run(prog, secret, seconds, "open", options=options, timeout=seconds + 120)
    renamed = _figures(renamer.communicate(timeout=60)[0])
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = _figures(proc.stdout)
    print(f"\nlink race as {box.who.name} ({mode}): {figures}, outside: {renamed}")
    assert renamed["renames"] > 1000 and figures["opens"] > 100, "the race did not run"
    assert figures["escapes"] == 0, f"a hard link to a file outside was opened for writing: {figures}"
    assert os.stat(secret).st_mtime_ns == before.st_mtime_ns
