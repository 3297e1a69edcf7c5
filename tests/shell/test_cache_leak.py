"""A project's .env cannot outlive it through the tool-cache variables.

The hook points npm, pip, uv, go, cargo, yarn and gradle at the project's
own cache inside it and puts back what the user had on leaving. An allowed
.envrc that loads .env (dotenv_if_exists) re-exports it without a new
`direnv allow`; a confined process writes CARGO_HOME (GRADLE_USER_HOME, ...)
there, pointing at a directory in the project whose config runs project
code (cargo's rustc-wrapper, gradle's init.d). direnv loads it at the very
prompt where the shell enters, before the hook sees the project: the values
put back on leaving must be those from before direnv ran there, so that no
cache variable points into the project, or at its cache, afterwards.
"""

import subprocess
import time
from pathlib import Path

import pytest

from peninsula.config.defaults import CACHE_ENV
from peninsula.config.socketdirs import SOCKET_ENV

from .conftest import PENINSULA, RC, supervised

# TMUX_TMPDIR and SCREENDIR too: pointed into the project after leaving,
# the user's next tmux would talk to a server a confined process started there.
NAMES = [name for name, _ in CACHE_ENV + SOCKET_ENV]
# Half of them set before the project (to these), half unset.
BEFORE = {name: f"/opt/user-{name}" for name in NAMES[::2]}
SET_BEFORE = {"bash": "export {n}={v}", "zsh": "export {n}={v}", "fish": "set -gx {n} {v}"}


def _project(user, home, name):
    proj = user.mkdir(home / name)
    user.write(proj / ".envrc", "dotenv_if_exists\n")
    result = user.run(["direnv", "allow", str(proj)], cwd=proj, env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    return proj


def _plant(term, proj):
    """The confined process: a command run in the project writes .env, and
    a cargo config whose rustc-wrapper is the project's own script."""
    env = "".join(f"{name}={proj}/evil-{name}\\n" for name in NAMES)  # printf's \n
    term.run(f"mkdir -p evil-CARGO_HOME && printf '[build]\\nrustc-wrapper = \"{proj}/w.sh\"\\n' > evil-CARGO_HOME/config.toml")
    term.run(f"printf '{env}' > .env")
    for _ in range(2):
        term.prompt()


def _values(term):
    """The cache variables exported now, NAME -> value (absent: unset)."""
    term.count += 1
    tag = f"V{term.count}:"
    text = term.run(f"env | grep -E '^({'|'.join(NAMES)})=' | sed 's/^/{tag}/'")
    return dict(line[len(tag):].split("=", 1) for line in text.splitlines() if line.startswith(tag))


def _scenario(term, user, home, shell):
    """Enter (the .env is planted), leave, enter again (direnv now loads the
    .env at the entering prompt), move straight to another project, leave.
    The values after each leaving."""
    proj = home / "proj"
    user.write(proj / ".envrc", "dotenv_if_exists\n")
    assert user.run(["direnv", "allow", str(proj)], cwd=proj, env={"HOME": str(home)}).returncode == 0
    other = _project(user, home, "other")
    for name, value in BEFORE.items():
        term.run(SET_BEFORE[shell].format(n=name, v=value))
    seen = []
    term.run("cd ~/proj")
    _plant(term, proj)
    inside = _values(term)
    term.run("cd ~")
    term.prompt()
    seen.append(_values(term))
    term.run("cd ~/other")
    _plant(term, other)
    term.run("cd ~/proj")
    term.prompt()
    term.run("cd ~/other")
    term.prompt()
    term.run("cd ~")
    term.prompt()
    seen.append(_values(term))
    term.run("cd ~/proj")
    term.prompt()
    term.run("cd ~")
    term.prompt()
    seen.append(_values(term))
    return inside, seen


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_leaving_puts_back_the_values_from_before_direnv(term_factory, home, user, shell):
    term = term_factory(shell)
    supervised(term)
    inside, seen = _scenario(term, user, home, shell)
    # Inside (confined), direnv's reload has exported the planted value.
    assert inside["CARGO_HOME"] == str(home / "proj" / "evil-CARGO_HOME"), inside
    for after in seen:
        assert after == BEFORE, term.screen()
        assert not any(str(home / ".cache" / "peninsula-projects") in v for v in after.values())


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_same_when_direnv_hook_is_set_up_after_peninsulas(term_factory, home, user, shell):
    """An rc file in the wrong order: direnv's hook then runs first at each prompt."""
    rel, text = RC[shell]
    first, second, rest = text.format(p=PENINSULA).split("\n", 2)
    user.write(home / rel, "\n".join([second, first, rest]))
    term = term_factory(shell)
    supervised(term)
    _, seen = _scenario(term, user, home, shell)
    for after in seen:
        assert after == BEFORE, term.screen()


def _old_hook(tmp: Path, shell: str) -> Path:
    """The hook as it was before this fix (the snapshot taken after direnv)."""
    name = {"bash": "peninsula.bash", "zsh": "peninsula.zsh", "fish": "peninsula.fish"}[shell]
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(["git", "-C", str(repo), "show", f"7d2827f:peninsula/hooks/{name}"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("the pre-fix hook is not in this checkout's history")
    path = tmp / f"old-{name}"
    path.write_text(result.stdout.replace("@PENINSULA@", PENINSULA))
    path.chmod(0o644)
    return path


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_control_the_old_hook_leaks_the_env_value(term_factory, home, user, shell):
    """Positive control: with the snapshot taken after direnv's hook, the
    planted value stays after leaving."""
    old = _old_hook(home, shell)
    rel, text = RC[shell]
    hook_line = f"{PENINSULA} hook {shell}"
    source = {"bash": f"source {old}", "zsh": f"source {old}", "fish": f"source {old}"}[shell]
    lines = [source if hook_line in line else line for line in text.format(p=PENINSULA).split("\n")]
    user.write(home / rel, "\n".join(lines))
    term = term_factory(shell)
    supervised(term)
    _, seen = _scenario(term, user, home, shell)
    leaked = seen[-1]
    assert leaked["CARGO_HOME"] == str(home / "proj" / "evil-CARGO_HOME"), term.screen()
    assert leaked != BEFORE


def _xtracefd(term, user, home):
    """A .env with BASH_XTRACEFD=1: bash closes fd 1 (the terminal) when
    that variable is unset, as direnv does on leaving. Whether the shell
    still has its fd 1 afterwards."""
    _project(user, home, "proj")
    term.run("cd ~/proj")
    term.run("printf 'BASH_XTRACEFD=1\\n' > .env")
    for _ in range(2):
        term.prompt()
    term.run("cd ~")
    # Its output may be gone: the answer is a file.
    term.tmux("send-keys", "-l", "if [ -e /proc/$$/fd/1 ]; then touch ~/out/fd1-open; else touch ~/out/fd1-closed; fi")
    term.tmux("send-keys", "Enter")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for name in ("fd1-open", "fd1-closed"):
            if (home / "out" / name).exists():
                return name == "fd1-open"
        time.sleep(0.1)
    raise AssertionError(term.screen())


def test_bash_xtracefd_from_a_project_is_put_back(term_factory, home, user):
    term = term_factory("bash")
    supervised(term)
    assert _xtracefd(term, user, home), term.screen()
    assert "the project set BASH_XTRACEFD; put back" in term.screen()
    term.run("echo still-here")


def test_control_bash_xtracefd_closes_the_terminal_without_the_guard(term_factory, home, user):
    """Positive control: with plain direnv, leaving closes the shell's fd 1."""
    term = term_factory("bash", env={"PENINSULA_DISABLE": "1"})
    term.run("true")
    assert not _xtracefd(term, user, home), term.screen()
