"""cd from a project straight into another, or home: the old project's
direnv environment is unloaded before the prompt ping, under the state the
shell is still in, and the new project's .envrc is loaded after it.

A confined process in p1 writes an .envrc (and allows it: its own project's)
that preloads a library into every program and puts its own `mkdir` first
on PATH. Both write a marker into the destination (p2, or a directory
beside the projects): a place p1's processes may not write, so a marker
there is p1's code running under p2 or unconfined. The unload's own
direnv run, the new .envrc's run and the user's next commands are all
covered. Positive control: the same session with PENINSULA_DISABLE=1
leaves markers there (direnv runs with the library at the switch).
"""

from __future__ import annotations

import os

import pytest

from cbuild import compile_c

from .conftest import PENINSULA, RC, furnish, SHELLS, Term, supervised

# Any program it is preloaded into leaves ran-COMM-PID in $ATTACK_OUT.
PRELOAD_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
__attribute__((constructor)) static void run(void) {
    char comm[64] = {0}, path[4096];
    const char *out = getenv("ATTACK_OUT");
    FILE *c = fopen("/proc/self/comm", "r");
    if (!out || !c) { if (c) fclose(c); return; }
    if (fgets(comm, sizeof comm, c)) comm[strcspn(comm, "\n")] = 0;
    fclose(c);
    snprintf(path, sizeof path, "%s/ran-%s-%d", out, comm, (int)getpid());
    FILE *f = fopen(path, "w");
    if (f) { fputs("p1's library ran here\n", f); fclose(f); }
}
"""
FAKE_MKDIR = '#!/bin/sh\necho "p1\'s mkdir ran here" > "$ATTACK_OUT/ran-path-mkdir-$$"\nexec /bin/mkdir "$@"\n'
ENVRC_P2 = "mkdir -p .direnv && echo loaded > .direnv/mark\nexport LOADED_p2=1\n"


@pytest.fixture
def layout(user):
    """home with p1 (an ordinary .envrc for now), p2 (a layout-like .envrc),
    out beside them, and stage: what the confined shell copies into p1."""
    home = user.mkdir(user.base / "home")
    p1, p2, out, stage = (user.mkdir(home / name) for name in ("p1", "p2", "out", "stage"))
    user.write(p1 / ".envrc", "export P1=1\n")
    user.write(p2 / ".envrc", ENVRC_P2)
    user.mkdir(stage / "bin")
    user.write(stage / "lib.so", compile_c(PRELOAD_C, "switch_preload.so", ("-shared", "-fPIC")).read_bytes())
    os.chmod(user.write(stage / "bin" / "mkdir", FAKE_MKDIR), 0o755)
    return furnish(user, home, [p1, p2])


def _hook_errors(screen: str) -> list[str]:
    """What the shells say when a hook reads a file that is not there yet
    (the state file, before the first ping)."""
    return [line for line in screen.splitlines() if "No such file" in line or "error occurred while redirecting" in line]


def _markers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("ran-"))


def _attack_then_switch(user, home, shell, destination: str, out, env=None, then: tuple[str, ...] = ()) -> str:
    term = Term(user, home, shell, env).start()
    try:
        if env is None:
            supervised(term)
        term.run("cd ~/p1")
        term.prompt()
        user.write(home / "stage" / "envrc", f"export LD_PRELOAD={home}/p1/lib.so\nexport ATTACK_OUT={out}\nPATH_add bin\n")
        # Written from inside p1 (confined there), and allowed there.
        term.run("sleep 1.1; cp -r ~/stage/lib.so ~/stage/bin . && cp ~/stage/envrc .envrc && direnv allow .")
        term.prompt()
        loaded = term.run('echo "out=$ATTACK_OUT"')
        assert f"out={out}" in loaded, loaded  # the attack's environment is in the shell
        for line in then:  # typed in p1 (confined), each with its next prompt
            term.run(line)
            term.prompt()
        for name in _markers(out):  # left by p1's own commands when nothing confines them (the control)
            (out / name).unlink()
        term.run(f"cd {destination}")
        term.prompt()
        term.run("/bin/true; bash -c true; mkdir -p made-after-the-switch")
        return term.screen()
    finally:
        term.close()


@pytest.mark.parametrize("shell", SHELLS)
def test_straight_into_the_next_project_nothing_of_p1_runs_under_it(user, layout, shell):
    home = layout
    screen = _attack_then_switch(user, home, shell, "~/p2", home / "p2")
    assert _markers(home / "p2") == [], screen
    assert _hook_errors(screen) == [], screen
    # And the next project's own .envrc ran under it, after the ping.
    assert (home / "p2" / ".direnv" / "mark").exists(), screen
    assert (home / "p2" / "made-after-the-switch").is_dir(), screen


@pytest.mark.parametrize("shell", SHELLS)
def test_out_of_the_project_nothing_of_it_runs_unconfined(user, layout, shell):
    home = layout
    screen = _attack_then_switch(user, home, shell, "~/out", home / "out")
    assert _markers(home / "out") == [], screen
    assert _hook_errors(screen) == [], screen
    assert (home / "out" / "made-after-the-switch").is_dir(), screen


@pytest.mark.parametrize("destination", ["p2", "out"])
def test_control_without_peninsula_the_route_leaves_markers(user, layout, destination):
    home = layout
    out = home / destination
    screen = _attack_then_switch(user, home, "bash", f"~/{destination}", out, env={"PENINSULA_DISABLE": "1"})
    assert "not supervising this shell" in screen, screen
    assert any(name.startswith("ran-direnv-") for name in _markers(out)), (_markers(out), screen)


# In `direnv export`, the library takes direnv's place: the output the
# shell evaluates is the library's, and it keeps the attack's environment.
SPEAKING_C = PRELOAD_C.replace("__attribute__((constructor)) static void run(void) {", r"""
static int in_direnv_export(void) {
    char cmdline[256] = {0};
    FILE *c = fopen("/proc/self/cmdline", "r");
    if (!c) return 0;
    size_t n = fread(cmdline, 1, sizeof cmdline - 1, c);
    fclose(c);
    size_t first = strlen(cmdline) + 1;
    return first < n && strcmp(cmdline + first, "export") == 0;
}
__attribute__((constructor)) static void run(void) {""").replace("fclose(f); }\n}", r"""fclose(f); }
    if (in_direnv_export()) {
        printf("export LD_PRELOAD=%s; export ATTACK_OUT=%s;\n", getenv("LD_PRELOAD"), out);
        fflush(stdout);
        _exit(0);
    }
}""")


def test_control_without_peninsula_the_rewritten_output_keeps_the_library(user, layout):
    # direnv's unload printed the library's lines instead of the revert:
    # p1's library is still preloaded into the commands typed in p2.
    home = layout
    user.write(home / "stage" / "lib.so", compile_c(SPEAKING_C, "switch_speaking.so", ("-shared", "-fPIC")).read_bytes())
    screen = _attack_then_switch(user, home, "bash", "~/p2", home / "p2", env={"PENINSULA_DISABLE": "1"})
    assert "not supervising this shell" in screen, screen
    assert any(name.startswith("ran-true-") for name in _markers(home / "p2")), (_markers(home / "p2"), screen)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_preloaded_direnv_that_rewrites_its_output(user, layout, shell):
    # With peninsula, direnv runs without p1's LD_PRELOAD (and the leave
    # puts back the value the shell had before p1): nothing of p1 runs in p2.
    home = layout
    user.write(home / "stage" / "lib.so", compile_c(SPEAKING_C, "switch_speaking.so", ("-shared", "-fPIC")).read_bytes())
    screen = _attack_then_switch(user, home, shell, "~/p2", home / "p2")
    assert _markers(home / "p2") == [], screen


@pytest.mark.parametrize("shell", SHELLS)
def test_an_envrc_direnv_cannot_read_leaves_nothing_of_p1_outside(user, layout, shell):
    # A confined process makes p1's .envrc unreadable: direnv (which loads
    # only a regular file it can open) unloads p1's environment at the next
    # prompt, inside p1, while the hooks still see the .envrc there. direnv
    # never saw p1's LD_PRELOAD, so it cannot revert it, and DIRENV_DIFF is
    # gone: nothing is left to unload when the shell leaves. The library
    # stays in the shell (checked: the route's precondition), and leaving
    # p1 must still take it away.
    # direnv's unload takes ATTACK_OUT away: this library has the place
    # for its markers built in.
    home = layout
    source = PRELOAD_C.replace('getenv("ATTACK_OUT")', "OUT_DIR")
    lib = compile_c(source, "switch_preload_out.so", ("-shared", "-fPIC", f'-DOUT_DIR="{home}/out"'))
    user.write(home / "stage" / "lib.so", lib.read_bytes())
    check = 'echo "ld=$LD_PRELOAD out=$ATTACK_OUT dd=$DIRENV_DIFF."'
    screen = _attack_then_switch(user, home, shell, "~/out", home / "out", then=("chmod 0 .envrc", check))
    assert f"ld={home}/p1/lib.so out= dd=." in screen, screen
    assert _markers(home / "out") == [], screen
    assert _hook_errors(screen) == [], screen


@pytest.mark.parametrize("shell", SHELLS)
def test_with_direnvs_hook_set_up_after_peninsulas_the_same(user, layout, shell):
    # The rc file sets up peninsula's hook first, then direnv's: the
    # hooks take direnv's call over at the prompt all the same.
    home = layout
    rel, text = RC[shell]
    first, second, rest = text.format(p=PENINSULA).split("\n", 2)
    user.write(home / rel, f"{second}\n{first}\n{rest}")
    user.write(home / "stage" / "lib.so", compile_c(SPEAKING_C, "switch_speaking.so", ("-shared", "-fPIC")).read_bytes())
    screen = _attack_then_switch(user, home, shell, "~/p2", home / "p2")
    assert "direnv hook" in first and "hook" in second and "direnv" not in second, (first, second)
    assert _markers(home / "p2") == [], screen
    assert (home / "p2" / ".direnv" / "mark").exists(), screen
