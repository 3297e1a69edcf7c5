"""Leaving a project: direnv unloads the project's environment while the
shell is still confined (direnv's hook runs before the prompt ping).

A confined process may write and allow its project's .envrc. One that
exports LD_PRELOAD gets its library into every later direnv run, and
direnv is dynamically linked. An adversarial review found that with the
ping first, the direnv run at the prompt after `cd ~` was unconfined with
the project's environment still loaded: the library appended to ~/.bashrc.
With A's environment still loaded at B's first prompt, it ran under B too.
"""

from __future__ import annotations

import subprocess

import pytest

from cbuild import compile_c

from .conftest import SHELLS, Term, supervised

# Acts only in direnv, so the shell's own commands are left alone. (direnv
# sees a changed .envrc by its mtime in whole seconds: the tests wait one.)
PRELOAD_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void run(void) {
    char comm[64] = {0}, path[4096];
    FILE *c = fopen("/proc/self/comm", "r");
    if (!c) return;
    if (!fgets(comm, sizeof comm, c)) { fclose(c); return; }
    fclose(c);
    const char *out = getenv("PRELOAD_OUT");
    if (strncmp(comm, "direnv", 6) != 0 || !out) return;
    snprintf(path, sizeof path, "%s/ran-%d", out, (int)getpid());
    FILE *f = fopen(path, "w");
    if (f) { fputs("the project's code ran in direnv\n", f); fclose(f); }
}
"""


def _preload(who, dest):
    so = compile_c(PRELOAD_C, "direnv_preload.so", ("-shared", "-fPIC"))
    who.write(dest, so.read_bytes())
    return dest


def _ran(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("ran-"))


@pytest.fixture
def outside(user, home):
    return user.mkdir(home / "out")


def test_the_library_runs_in_direnv_unconfined(user, home, outside):
    # Positive control: the library does what the attack needs when direnv
    # runs outside any sandbox with it preloaded.
    so = _preload(user, home / "proj" / "lib.so")
    result = user.run(["direnv", "version"], env={"HOME": str(home), "LD_PRELOAD": str(so), "PRELOAD_OUT": str(outside)})
    assert result.returncode == 0, result.stderr
    assert _ran(outside), "the preloaded library did not run in direnv: this test would prove nothing"


def _attack_then_go(user, home, shell, out, destination) -> str:
    """In the project, a confined process writes and allows an .envrc that
    preloads the library into direnv (writing to out); then the shell goes
    to destination. The screen, for the assertion's message."""
    so = _preload(user, home / "proj" / "lib.so")
    term = Term(user, home, shell).start()
    try:
        supervised(term)
        term.run("cd ~/proj")
        term.prompt()
        term.run(f"sleep 1.1; printf 'export LD_PRELOAD={so}\\nexport PRELOAD_OUT={out}\\n' > .envrc; direnv allow .")
        term.prompt()
        loaded = term.run('echo "out=$PRELOAD_OUT"')
        assert f"out={out}" in loaded, loaded  # the attack's environment is in the shell
        term.run(f"cd {destination}")
        term.prompt()
        term.prompt()
        return term.screen()
    finally:
        term.close()


@pytest.mark.parametrize("shell", SHELLS)
def test_leaving_the_project_unloads_its_environment_confined(user, home, outside, shell):
    screen = _attack_then_go(user, home, shell, outside, "~")
    assert _ran(outside) == [], screen


@pytest.mark.parametrize("shell", SHELLS)
def test_the_next_project_does_not_run_the_last_ones_environment(user, home, outside, shell):
    other = user.mkdir(home / "projb")
    user.write(other / ".envrc", "export B=1\n")
    assert user.run(["direnv", "allow", str(other)], cwd=other, env={"HOME": str(home)}).returncode == 0
    screen = _attack_then_go(user, home, shell, other, "~/projb")
    assert _ran(other) == [], screen
