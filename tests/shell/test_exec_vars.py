"""Issue 17 class 7: what a project sets in the shell's own execution hooks
does not outlive it.

An allowed .envrc that loads .env (dotenv_if_exists) re-exports it when it
changes, without a new `direnv allow`. A confined process writes shell code
into such variables there; without peninsula's guard direnv exports them,
they replace direnv's own hook (so nothing unloads them), and they run at
every prompt, unconfined once the user has left. With the guard they are
put back before the shell runs them, with one line saying so.
"""

import os

import pytest

from .conftest import PENINSULA, RC, supervised

# What a confined process writes into .env, per shell: each value runs
# `touch out/<marker>` in the shell when evaluated. The bash one also sends
# peninsula's prompt ping itself, so that confinement is lifted when the
# user leaves although peninsula's own hook is gone.
ATTACKS = {
    # It also points the hook at a session dir of its own, whose caches
    # file (the variables the hook exports in a project) plants more.
    "bash": ("PROMPT_COMMAND=': >| /dev/null/.peninsula-prompt; touch {out}/pc'\nPS0='$(touch {out}/ps0)'\n"
             "PENINSULA_SESSION_DIR={proj}/fake\n", ("pc", "ps0", "fake")),
    # (direnv itself never exports PS1.) zsh expands prompts in the shell
    # itself (PROMPT_SUBST): ${PATH::=...} there outlives direnv's unload,
    # and `ls` typed after leaving runs the project's bin/ls.
    "zsh": ("RPROMPT='${{PATH::={proj}/bin:$PATH}}'\nPROMPT='$(touch {out}/prompt)> '\n", ("path-ls", "prompt")),
    "fish": ("fish_function_path={proj}/fns\n", ("fish",)),
}


def _project(user, home, shell):
    proj = home / "proj"
    user.write(proj / ".envrc", "dotenv_if_exists\n")
    result = user.run(["direnv", "allow", str(proj)], cwd=proj, env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    fns = user.mkdir(proj / "fns")
    # fish autoloads fish_right_prompt from fish_function_path at each
    # prompt; loading the file also installs a prompt handler that stays.
    user.write(fns / "fish_right_prompt.fish",
               f"function __planted --on-event fish_prompt; touch {home}/out/fish; end\nfunction fish_right_prompt; end\n")
    fake = user.mkdir(proj / "fake")
    user.write(fake / "state", "elsewhere\n")
    user.write(fake / "caches", f"PS0=$(touch {home}/out/fake)\n")
    bin_dir = user.mkdir(proj / "bin")
    user.write(bin_dir / "ls", f"#!/bin/sh\ntouch {home}/out/path-ls\n")
    os.chmod(bin_dir / "ls", 0o755)
    text, markers = ATTACKS[shell]
    return text.format(out=home / "out", proj=proj), [home / "out" / m for m in markers]


def _attack(term, env_text):
    term.run("cd proj")
    # The confined process: an ordinary command started in the project.
    quoted = env_text.replace("\\", "\\\\").replace("'", "'\\''")
    term.run(f"printf '%s' '{quoted}' > .env")
    for _ in range(3):
        term.prompt()
    term.run("cd ..")
    for _ in range(3):
        term.prompt()
    term.run("ls")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_project_cannot_plant_code_in_the_shell(term_factory, home, user, shell):
    env_text, markers = _project(user, home, shell)
    term = term_factory(shell)
    supervised(term)
    _attack(term, env_text)
    ran = [m.name for m in markers if m.exists()]
    assert ran == [], term.screen()
    assert "a project may not change what this shell runs" in term.screen()
    # The shell is a normal shell again: direnv's hook still unloads, and
    # the shell left the project.
    term.run("echo x > out/after")
    assert (home / "out" / "after").exists()


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_guard_holds_when_direnv_hook_is_set_up_after_peninsulas(term_factory, home, user, shell):
    """An rc file in the wrong order: direnv's hook then puts itself first."""
    rel, text = RC[shell]
    first, second, rest = text.format(p=PENINSULA).split("\n", 2)
    user.write(home / rel, "\n".join([second, first, rest]))
    env_text, markers = _project(user, home, shell)
    term = term_factory(shell)
    supervised(term)
    _attack(term, env_text)
    assert [m.name for m in markers if m.exists()] == [], term.screen()
    assert "a project may not change what this shell runs" in term.screen()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_without_peninsula_the_same_env_runs_code(term_factory, home, user, shell):
    """Positive control: the attack is real."""
    env_text, markers = _project(user, home, shell)
    term = term_factory(shell, env={"PENINSULA_DISABLE": "1"})
    term.run("true")
    _attack(term, env_text)
    assert any(m.exists() for m in markers), term.screen()
