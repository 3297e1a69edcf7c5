"""Drive real interactive shells in tmux, as the unprivileged test user.

Each test gets a fake home (owned by the user) with rc files that load
direnv's hook and then peninsula's, a direnv-allowed project in it, and a
directory beside the project that the user may write but the sandbox must
refuse while confined.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"

SHELLS = ("bash", "zsh", "fish")
PENINSULA = f"{SYSTEM_PYTHON} -m peninsula"

RC = {
    "bash": (".bashrc", 'eval "$(direnv hook bash)"\neval "$({p} hook bash)"\nPS1=\'${{PENINSULA_PROMPT}}\\w\\$ \'\n'),
    "zsh": (".zshrc", 'eval "$(direnv hook zsh)"\neval "$({p} hook zsh)"\nsetopt PROMPT_SUBST\nPS1=\'${{PENINSULA_PROMPT}}%~%# \'\n'),
    "fish": (
        ".config/fish/config.fish",
        "direnv hook fish | source\n{p} hook fish | source\n"
        "function fish_prompt; echo -n \"$PENINSULA_PROMPT\"(prompt_pwd)'> '; end\n"
        "set -g fish_greeting ''\n",
    ),
}


class Term:
    """One tmux session running a shell as the test user."""

    def __init__(self, runner, home: Path, shell: str, env: dict | None = None):
        self.runner = runner
        self.home = home
        self.shell = shell
        self.socket = f"pt-{uuid.uuid4().hex[:8]}"
        self.env = {
            "HOME": str(home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "TERM": "xterm",
            "PYTHONPATH": str(runner.runtime),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            "SHELL": f"/usr/bin/{shell}",
            "XDG_RUNTIME_DIR": "",
            **(env or {}),
        }
        self.count = 0

    def tmux(self, *args, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.runner.prefix() + ["tmux", "-L", self.socket, *args],
            env={k: v for k, v in self.env.items() if v != ""},
            capture_output=True,
            text=True,
            check=check,
            timeout=30,
        )

    def start(self, argv: list[str] | None = None) -> "Term":
        command = " ".join(argv or [self.shell, "-i"])
        self.tmux("-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "60", "-c", str(self.home), command)
        self.tmux("set-option", "-g", "remain-on-exit", "on")
        return self

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-2000", check=False).stdout

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.M)
        while time.monotonic() < deadline:
            text = self.screen()
            if regex.search(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def run(self, line: str, timeout: float = 20.0) -> str:
        """Type a line and wait until the shell has run it (and its prompt hooks)."""
        self.count += 1
        marker = f"__done_{self.count}__"
        sep = " " if line.rstrip().endswith("&") else "; "
        self.tmux("send-keys", "-l", f"{line}{sep}echo {marker}")
        self.tmux("send-keys", "Enter")
        text = self.wait_for(rf"^{re.escape(marker)}\s*$", timeout)
        return text

    def prompt(self, timeout: float = 20.0) -> None:
        """Press Enter on an empty line and wait for the prompt hook to run."""
        self.run("true", timeout)

    def close(self) -> None:
        self.tmux("kill-server", check=False)


def furnish(user, home: Path, allowed=()) -> Path:
    """Make home the test user's: the hook in each shell's rc file, home
    listed as the session's baseline root (the session's Landlock baseline
    is home + temp dirs, and this fake home is not the user's real one),
    everything in it the user's, and the direnv projects in allowed allowed."""
    for rel, text in RC.values():
        user.mkdir((home / rel).parent)
        user.write(home / rel, text.format(p=PENINSULA))
    user.mkdir(home / ".config" / "peninsula")
    user.write(home / ".config" / "peninsula" / "config.toml", f'baseline = ["{home}"]\n')
    for path in [home, *home.rglob("*")]:
        os.lchown(path, user.uid, user.gid)
    for project in allowed:
        result = user.run(["direnv", "allow", str(project)], cwd=project, env={"HOME": str(home)})
        assert result.returncode == 0, result.stderr
    return home


@pytest.fixture
def home(user) -> Path:
    home = user.mkdir(user.base / "home")
    project = user.mkdir(home / "proj")
    user.mkdir(home / "out")
    user.write(project / ".envrc", "export PROJ_LOADED=1\n")
    return furnish(user, home, [project])


@pytest.fixture
def term_factory(user, home):
    terms = []

    def make(shell: str, env: dict | None = None, argv: list[str] | None = None) -> Term:
        term = Term(user, home, shell, env).start(argv)
        terms.append(term)
        return term

    yield make
    for term in terms:
        term.close()


def supervised(term: Term) -> None:
    """Wait until the shell runs under the supervisor (the hook re-exec'd it)."""
    term.run('echo "session=$PENINSULA_SESSION"')
    text = term.screen()
    assert re.search(r"^session=\d+-\d+", text, re.M), text
