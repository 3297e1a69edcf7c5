"""Everyday work inside a project, typed into real bash, zsh and fish.

One table of workflows: each is a line typed at the prompt of a supervised
shell (plain user, direnv + peninsula hooks, default config) inside a
direnv project, and must succeed with zero `peninsula: denied` lines on the
terminal. The three shells run side by side, one session each, every
workflow in turn; each (shell, workflow) is then its own test item, so a
known bug owned by another work package is an xfail(strict=True) that turns
into a failure once it is fixed.

A workflow's output goes to a log file in the project, so the pane holds
only the supervisor's notices (which it writes to the terminal itself).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from .conftest import PENINSULA, RC, SHELLS, Term

DENIED = "peninsula: denied"


@dataclass
class Workflow:
    name: str
    line: str = ""  # typed as one line; the same text in all three shells
    steps: Callable | None = None  # or: an interactive session driven by keys
    check: Callable | None = None  # (project, log) -> None, asserting
    known: dict = field(default_factory=dict)  # shell or "*" -> the issue item that fixes it
    where: str = "proj"  # the project it runs in: proj-SHELL or layout-SHELL (a direnv `layout python3`)
    # Genuine refusals the workflow meets (the kernel would have carried the
    # call out): each a regex one denial line must match; every other line fails.
    genuine: tuple = ()


# gpg opens its trust database for writing on a verify; it stays protected
# inside a project (its ownertrust decides whose signatures git calls good),
# so gpg notes 'trustdb not writable', reads it and verifies; peninsula shows
# that one genuine refusal (README: the gpg allowances).
TRUSTDB_OPEN = r"peninsula: denied open of \S*/\.gnupg/trustdb\.gpg by gpg \(pid \d+\): "


def _wait_visible(term: Term, pattern: str, timeout: float = 20.0) -> None:
    """Wait for what the pane shows now (a full-screen program draws on the
    alternate screen, which the history capture of Term.screen misses)."""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, term.tmux("capture-pane", "-p", check=False).stdout, re.M):
        assert time.monotonic() < deadline, f"timed out waiting for {pattern!r}:\n" + term.tmux("capture-pane", "-p").stdout
        time.sleep(0.1)


def _wait_prompt(term: Term) -> None:
    """Until the shell shows its prompt again: keys typed while a full-screen
    program restores the terminal are discarded (zsh, fish)."""
    deadline = time.monotonic() + 20
    while not re.search(r"~/proj-\w+[$%>]$", term.tmux("capture-pane", "-p", check=False).stdout.rstrip()):
        assert time.monotonic() < deadline, "no prompt:\n" + term.tmux("capture-pane", "-p").stdout
        time.sleep(0.1)


def _python_repl(term: Term, shell: str) -> None:
    term.keys("-l", "python3 -q")
    term.keys("Enter")
    term.wait_for(r"^>>>\s*$")
    term.keys("-l", "6*7")
    term.keys("Enter")
    term.wait_for(r"^42$")
    term.keys("C-d")
    _wait_prompt(term)


def _sqlite_repl(term: Term, shell: str) -> None:
    # sqlite3 finds its history in the passwd home, not $HOME (our test home).
    term.keys("-l", "SQLITE_HISTORY=$HOME/.sqlite_history sqlite3 wf.db")
    term.keys("Enter")
    term.wait_for(r"^sqlite>\s*$")
    term.keys("-l", "select 6*7\\;")  # a bare trailing ';' ends a tmux command
    term.keys("Enter")
    term.wait_for(r"^42$")
    term.keys("-l", ".quit")
    term.keys("Enter")
    _wait_prompt(term)


def _node_repl(term: Term, shell: str) -> None:
    term.keys("-l", "node")
    term.keys("Enter")
    term.wait_for(r"^>\s*$")
    term.keys("-l", "6*7")
    term.keys("Enter")
    term.wait_for(r"^42$")
    term.keys("-l", ".exit")
    term.keys("Enter")
    _wait_prompt(term)


def _less(term: Term, shell: str) -> None:
    term.keys("-l", "seq 1 500 > nums.txt; less nums.txt")
    term.keys("Enter")
    _wait_visible(term, r"^2$")
    term.keys("-l", "/250")
    term.keys("Enter")
    _wait_visible(term, r"^250$")
    term.keys("q")
    _wait_prompt(term)


def _vim(term: Term, shell: str) -> None:
    term.keys("-l", "printf 'one\\n' > notes.txt; vim notes.txt")
    term.keys("Enter")
    _wait_visible(term, r'"notes\.txt" 1L')  # vim's own status line: it reads keys now
    term.keys("-l", "otwo")
    term.keys("Escape")
    term.keys("-l", ":wq")
    term.keys("Enter")
    _wait_prompt(term)


def _direnv_layout(term: Term, shell: str) -> None:
    term.run("cd ~")
    term.keys("-l", f"cd ~/layout-{shell}")
    term.keys("Enter")
    term.wait_for(r"direnv: export", timeout=300)  # installing pip into the venv takes a while


def _direnv_layout_from_project(term: Term, shell: str) -> None:
    term.keys("-l", f"cd ~/layout2-{shell}")
    term.keys("Enter")
    term.wait_for(r"direnv: export", timeout=300)


def _has(path: str, text: str | None = None):
    def check(project: Path, log: str) -> None:
        target = project / path
        assert target.exists(), f"{target} missing; log:\n{log}"
        if text is not None:
            assert text in target.read_text(errors="replace"), target.read_text(errors="replace")
    return check


def _log_has(text: str):
    def check(project: Path, log: str) -> None:
        assert text in log, log
    return check


def _home_has(rel: str, text: str):
    def check(project: Path, log: str) -> None:
        target = project.parent / rel
        assert target.exists() and text in target.read_text(errors="replace"), f"{target}"
    return check


def _layout_ready(name: str):
    def check(project: Path, log: str) -> None:
        layout = project.parent / f"{name}-{project.name.split('-', 1)[1]}" / ".direnv"
        assert list(layout.glob("python-*/bin/python")), f"no venv under {layout}"
    return check


GIT_INIT = "git init -q {d} && cd {d} && echo a > a.txt && git add a.txt && git commit -qm first"

WORKFLOWS = [
    Workflow("git-commit", GIT_INIT.format(d="g1") + " && git log --oneline", check=_log_has("first")),
    Workflow("git-branch-merge", GIT_INIT.format(d="g2") + " && git switch -qc feat && echo b > b.txt && git add b.txt"
             " && git commit -qm feat && git switch -q main && git merge -q --no-ff -m merged feat && test -f b.txt"),
    Workflow("git-rebase", GIT_INIT.format(d="g3") + " && git switch -qc topic && echo t > t.txt && git add t.txt"
             " && git commit -qm topic && git switch -q main && echo m > m.txt && git add m.txt && git commit -qm main"
             " && git switch -q topic && git rebase -q main && git log --oneline | wc -l", check=_log_has("3")),
    Workflow("git-stash", GIT_INIT.format(d="g4") + " && echo changed > a.txt && git stash -q && grep -qx a a.txt"
             " && git stash pop -q && grep -qx changed a.txt"),
    Workflow("git-gc-repack", GIT_INIT.format(d="g5") + " && seq 1 200 > n.txt && git add n.txt && git commit -qm n"
             " && git gc -q --aggressive && git repack -qad && git fsck --no-progress"),
    Workflow("git-worktree", GIT_INIT.format(d="g6") + " && git worktree add -q ../g6-wt -b wt && test -f ../g6-wt/a.txt"
             " && git worktree remove ../g6-wt"),
    Workflow("git-clone-outside", "git clone -q ~/outside-repo clone && cd clone && git log --oneline && echo x >> README"
             " && git commit -qam local && git pull -q --rebase", check=_log_has("outside")),
    Workflow("git-clone-url", "git clone -q file://$HOME/outside-repo clone-url && cd clone-url && git fetch -q"
             " && git log --oneline", check=_log_has("outside")),
    Workflow("git-tag-archive", GIT_INIT.format(d="g7") + " && git tag v1 && git archive -o ../g7.tar v1 && tar tf ../g7.tar",
             check=_log_has("a.txt")),
    Workflow("git-signed-commit", GIT_INIT.format(d="g8") + " && echo s > s.txt && git add s.txt && git commit -S -qm signed"),
    Workflow("git-verify-commit", GIT_INIT.format(d="g8v") + " && echo s > s.txt && git add s.txt && git commit -S -qm signed"
             " && git verify-commit HEAD", genuine=(TRUSTDB_OPEN,)),
    # One venv with pip per shell (ensurepip is the slowest step here): direnv's.
    Workflow("direnv-layout-python", steps=_direnv_layout, check=_layout_ready("layout")),
    Workflow("pip-install-in-layout", "pip install -q --no-index --find-links ~/pkgs wfpkg"
             " && python -c 'import wfpkg; print(wfpkg.ANSWER)'", check=_log_has("42"), where="layout"),
    Workflow("python-venv", "python3 -m venv --without-pip venv && venv/bin/python -c 'import sys; print(sys.prefix)'",
             check=_log_has("/venv")),
    Workflow("python-bytecode", "mkdir pyb && printf 'X = 1\\n' > pyb/mod.py && cd pyb && python3 -c 'import mod'"
             " && python3 -m compileall -q . && test -d __pycache__"),
    Workflow("pytest", "mkdir pt && printf 'def test_ok():\\n    assert 1\\n' > pt/test_x.py && cd pt"
             " && PYTHONPATH=$HOME/pylib python3 -m pytest -q", check=_log_has("1 passed")),
    Workflow("npm-install-npx", "mkdir npmp && cd npmp && npm init -y && npm install --offline --no-audit --no-fund"
             " ~/pkgs/wf-hello.tgz && npx wf-hello", check=_log_has("hello from npx")),
    Workflow("node-mkdir-recursive", "node -e 'const fs = require(\"fs\"), os = require(\"os\");"
             " fs.mkdirSync(os.homedir() + \"/.config\", {recursive: true}); fs.mkdirSync(\"nd/a/b\", {recursive: true})'"
             " && test -d nd/a/b"),
    Workflow("make-cc", "mkdir mk && cd mk && printf '#include <stdio.h>\\nint main(void){puts(\"built\");return 0;}\\n' > hello.c"
             " && printf 'hello: hello.c\\n\\tcc -O2 -o hello hello.c\\n' > Makefile && make -s && ./hello",
             check=_log_has("built")),
    Workflow("cmake", "mkdir cm && cd cm && printf 'int main(void){return 0;}\\n' > main.c"
             " && printf 'cmake_minimum_required(VERSION 3.10)\\nproject(wf C)\\nadd_executable(wf main.c)\\n' > CMakeLists.txt"
             " && cmake -S . -B build > /dev/null && cmake --build build && ./build/wf"),
    Workflow("vim-es", "printf 'alpha\\n' > v.txt && vim -es -c '%s/alpha/beta/' -c wq v.txt && grep -qx beta v.txt"),
    Workflow("vim-edit", steps=_vim, check=_has("notes.txt", "two")),
    Workflow("sed-i-perl-i", "printf 'a\\nb\\n' > s.txt && sed -i 's/a/A/' s.txt && perl -pi -e 's/b/B/' s.txt"
             " && grep -qx A s.txt && grep -qx B s.txt"),
    Workflow("tar-gzip-xz", "mkdir -p tr/src/deep && seq 1 100 > tr/src/deep/f && tar czf tr/a.tgz -C tr src"
             " && mkdir tr/x && tar xzf tr/a.tgz -C tr/x && cmp tr/src/deep/f tr/x/src/deep/f"
             " && xz -k tr/src/deep/f && unxz -c tr/src/deep/f.xz > /dev/null && gzip -k tr/src/deep/f && gunzip -f tr/src/deep/f.gz"),
    Workflow("zip-unzip", "mkdir zp && seq 1 50 > zp/f && cd zp && zip -q z.zip f && mkdir out && unzip -q z.zip -d out && cmp f out/f"),
    Workflow("cp-a-mv-rm", "mkdir -p cp/src/sub && echo x > cp/src/sub/f && chmod 640 cp/src/sub/f && ln -s sub/f cp/src/l"
             " && cp -a cp/src cp/dst && test -L cp/dst/l && mv cp/dst cp/moved && rm -rf cp/moved && test -d cp/src"),
    Workflow("ln-symlink-hardlink", "mkdir ln && cd ln && echo t > target && ln -s target soft && ln target hard"
             " && test \"$(readlink soft)\" = target && test \"$(cat hard)\" = t"),
    Workflow("chmod-touch-script", "printf '#!/bin/sh\\necho ran\\n' > run.sh && chmod +x run.sh && ./run.sh && touch -d 2020-01-01 run.sh"
             " && chmod 600 run.sh", check=_log_has("ran")),
    Workflow("mkdir-p-existing", "mkdir -p ~/.config ~/.cache && mkdir -p mp/a/b && mkdir -p mp/a/b"),
    Workflow("python-makedirs-exist-ok", "python3 -c 'import os; os.makedirs(os.path.expanduser(\"~/.cache\"), exist_ok=True);"
             " os.makedirs(\"pm/a\", exist_ok=True); os.makedirs(\"pm/a\", exist_ok=True)'"),
    Workflow("sqlite3", "sqlite3 wf.sqlite 'create table t(x); insert into t values (41); update t set x = x + 1;"
             " select x from t;'", check=_log_has("42")),
    Workflow("tmux-inside", "tmux -L wf-inner -f /dev/null new-session -d 'sleep 30' && tmux -L wf-inner ls"
             " && tmux -L wf-inner kill-server", check=_log_has("1 windows")),
    # `screen -dm` returns at its fork, before the server listens (a race
    # screen wins unconfined by microseconds, and loses to a mediated bind):
    # wait for the session as a script would.
    Workflow("screen-inside", "sh -c 'screen -dmS wfscreen sleep 30 && for i in $(seq 50); do screen -ls wfscreen"
             " | grep -q Detached && break; sleep 0.1; done; screen -ls wfscreen; screen -S wfscreen -X quit'",
             check=_log_has("wfscreen")),
    Workflow("ssh-keygen", "ssh-keygen -q -t ed25519 -N '' -C wf -f ./wf_key && ssh-keygen -l -f wf_key.pub",
             check=_log_has("wf (ED25519)")),
    # The user's agent, started outside (an agent started inside a project
    # makes itself non-dumpable, so a supervisor that is not root cannot read
    # its requests: tests/run/test_agents.py, its one-line refusal).
    Workflow("ssh-agent-add", "ssh-keygen -q -t ed25519 -N '' -C wfa -f ./wf_agent_key"
             " && ssh-add -q ./wf_agent_key && ssh-add -l && ssh-add -d ./wf_agent_key.pub", check=_log_has("wfa (ED25519)")),
    Workflow("diff-patch", "printf 'a\\nb\\n' > p1 && printf 'a\\nc\\n' > p2 && cp p1 p3 && diff -u p1 p2 > p.diff;"
             " patch -s p3 p.diff && cmp p2 p3"),
    Workflow("find-xargs-sort", "mkdir -p fx/a fx/b && touch fx/a/1.o fx/b/2.o fx/keep.c && find fx -name '*.o' -delete"
             " && find fx -type f | sort && seq 5 -1 1 > fx/n && sort -o fx/n fx/n && head -1 fx/n", check=_log_has("fx/keep.c")),
    Workflow("tmp-files", "mktemp -d > tmpdir.txt && echo x > \"$(cat tmpdir.txt)/f\" && rm -r \"$(cat tmpdir.txt)\""
             " && mktemp > tmpf.txt && echo x > \"$(cat tmpf.txt)\" && rm \"$(cat tmpf.txt)\""),
    Workflow("timeout-signal", "timeout 0.5 sleep 30 || echo timed-out", check=_log_has("timed-out")),
    Workflow("python-repl-history", steps=_python_repl, check=_home_has(".python_history", "6*7")),
    Workflow("sqlite-repl-history", steps=_sqlite_repl, check=_home_has(".sqlite_history", "select 6*7;"),),
    Workflow("node-repl-history", steps=_node_repl, check=_home_has(".node_repl_history", "6*7")),
    Workflow("less-search", steps=_less),
    Workflow("direnv-layout-from-project", steps=_direnv_layout_from_project, check=_layout_ready("layout2")),
]


# -- set-up: one home for the three shells, a project for each ----------------------


def _wheel(directory: Path) -> None:
    """A minimal local wheel for pip (offline)."""
    name = directory / "wfpkg-1.0-py3-none-any.whl"
    files = {
        "wfpkg/__init__.py": "ANSWER = 42\n",
        "wfpkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: wfpkg\nVersion: 1.0\n",
        "wfpkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + "wfpkg-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(name, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr("wfpkg-1.0.dist-info/RECORD", record)


def _npm_package(directory: Path) -> None:
    src = directory / "npm-src" / "package"
    src.mkdir(parents=True)
    (src / "package.json").write_text('{"name": "wf-hello", "version": "1.0.0", "bin": {"wf-hello": "bin.js"}}\n')
    (src / "bin.js").write_text("#!/usr/bin/env node\nconsole.log('hello from npx');\n")
    (src / "bin.js").chmod(0o755)
    subprocess.run(["tar", "czf", str(directory / "wf-hello.tgz"), "-C", str(src.parent), "package"], check=True)
    shutil.rmtree(directory / "npm-src")


def _pytest_libs(directory: Path) -> None:
    """pytest for the system interpreter, from the test venv (offline)."""
    import _pytest
    import iniconfig
    import packaging
    import pluggy

    for module in (pytest, _pytest, pluggy, iniconfig, packaging):
        source = Path(module.__file__).parent
        shutil.copytree(source, directory / source.name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(Path(pytest.__file__).parent.parent / "py.py", directory / "py.py")
    for dist in Path(pytest.__file__).parent.parent.glob("*.dist-info"):
        if dist.name.split("-")[0].lower() in ("pytest", "pluggy", "iniconfig", "packaging"):
            shutil.copytree(dist, directory / dist.name)


@pytest.fixture(scope="module")
def workflow_home(runtime):
    from conftest import SCRATCH_ROOT, _runner

    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="wf-", dir=SCRATCH_ROOT))
    os.chmod(scratch, 0o755)
    user = _runner("user", runtime, scratch)
    home = user.base / "home"
    home.mkdir()
    for rel, text in RC.values():
        (home / rel).parent.mkdir(parents=True, exist_ok=True)
        (home / rel).write_text(text.format(p=PENINSULA))
    (home / ".config" / "peninsula").mkdir(parents=True)
    (home / ".config" / "peninsula" / "config.toml").write_text(f'baseline = ["{home}"]\n')
    (home / ".cache").mkdir()
    # A developer's REPL histories exist already (readline then writes a
    # temporary file and renames it onto the history).
    for name in (".python_history", ".sqlite_history", ".node_repl_history", ".lesshst", ".viminfo"):
        (home / name).write_text("")
    for shell in SHELLS:
        (home / f"proj-{shell}" / ".wf").mkdir(parents=True)
        (home / f"proj-{shell}" / ".envrc").write_text("export PROJ_LOADED=1\n")
        for layout in ("layout", "layout2"):
            (home / f"{layout}-{shell}" / ".wf").mkdir(parents=True)
            (home / f"{layout}-{shell}" / ".envrc").write_text("layout python3\n")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Work Flow\n\temail = wf@example.org\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    pkgs = home / "pkgs"
    pkgs.mkdir()
    _wheel(pkgs)
    _npm_package(pkgs)
    _pytest_libs(home / "pylib")
    outside = home / "outside-repo"
    outside.mkdir()
    (outside / "README").write_text("outside\n")
    for path in [home, *home.rglob("*")]:
        os.lchown(path, user.uid, user.gid)
    env = {"HOME": str(home), "GNUPGHOME": str(home / ".gnupg")}
    for argv, cwd in (
        (["git", "init", "-q"], outside), (["git", "add", "README"], outside), (["git", "commit", "-qm", "outside"], outside),
        *[(["direnv", "allow", str(home / d)], home) for s in SHELLS for d in (f"proj-{s}", f"layout-{s}", f"layout2-{s}")],
        (["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", "Work Flow <wf@example.org>", "ed25519", "sign", "never"], home),
        (["git", "config", "--global", "commit.gpgsign", "false"], home),
        # The user's gpg-agent runs outside the sandbox (as a desktop
        # session's does): gpg inside a project signs through it.
        (["gpg-connect-agent", "--quiet", "/bye"], home),
    ):
        result = user.run(argv, cwd=cwd, env=env)
        assert result.returncode == 0, (argv, result.stderr)
    # The user's ssh-agent, outside the sandbox: its socket is in every
    # session's environment from the start.
    agent = user.run(["ssh-agent", "-a", str(user.base / "ssh-agent.sock"), "-s"], env=env)
    assert agent.returncode == 0, agent.stderr
    agent_pid = int(re.search(rb"SSH_AGENT_PID=(\d+)", agent.stdout).group(1))
    fingerprint = user.run(["gpg", "--list-secret-keys", "--with-colons"], env=env).stdout.decode()
    key = re.search(r"^fpr:+([0-9A-F]+):", fingerprint, re.M).group(1)
    assert user.run(["git", "config", "--global", "user.signingkey", key], env=env).returncode == 0
    yield user, home
    user.run(["gpgconf", "--kill", "gpg-agent"], env=env)
    os.kill(agent_pid, signal.SIGTERM)
    started = time.monotonic()
    shutil.rmtree(scratch, ignore_errors=True)
    sys.stderr.write(f"workflow home removed in {time.monotonic() - started:.0f} s\n")


# -- running: each shell types every workflow in turn ----------------------------------


def _rc_expr(shell: str) -> str:
    return "$status" if shell == "fish" else "$?"


def _typed(shell: str, index: int, wf: Workflow) -> str:
    body = f"begin; {wf.line}; end" if shell == "fish" else f"{{ {wf.line}; }}"
    return (f"echo @@{index}-go@@; cd ~/{wf.where}-{shell}; {body} > ~/{wf.where}-{shell}/.wf/{wf.name}.log 2>&1 </dev/null;"
            f" echo @@{index}-rc={_rc_expr(shell)}@@")


def _go(term: Term, shell: str, where: str) -> None:
    """Into another project by way of the home, with a prompt in between
    (straight from one project to another is strict until the prompt)."""
    term.run("cd ~")
    term.run(f"cd ~/{where}-{shell}", timeout=180)


def _between(text: str, index: int) -> str:
    start = re.search(rf"^@@{index}-go@@$", text, re.M)
    return text[start.end():] if start else text


def _session(user, home: Path, shell: str) -> Term:
    term = Term(user, home, shell, {"SSH_AUTH_SOCK": str(user.base / "ssh-agent.sock")}).start()
    term.run('echo "session=$PENINSULA_SESSION"')
    assert re.search(r"^session=\d+-\d+", term.screen(), re.M), term.screen()
    term.run(f"cd ~/proj-{shell}")
    term.prompt()
    return term


def _run_shell(user, home: Path, shell: str, out: dict) -> None:
    term = None
    try:
        term = _session(user, home, shell)
        for index, wf in enumerate(WORKFLOWS):
            term.tmux("clear-history")
            result = {"rc": None, "denials": [], "error": None, "seconds": time.monotonic()}
            try:
                if wf.line:
                    if wf.where != "proj":
                        _go(term, shell, wf.where)
                    term.keys("-l", _typed(shell, index, wf))
                    term.keys("Enter")
                    text = term.wait_for(rf"^@@{index}-rc=\d+@@$", timeout=90)
                    result["rc"] = int(re.search(rf"^@@{index}-rc=(\d+)@@$", text, re.M).group(1))
                    if wf.where != "proj":
                        _go(term, shell, "proj")
                else:
                    term.run(f"echo @@{index}-go@@; cd ~/proj-{shell}")
                    wf.steps(term, shell)
                    text = term.run(f"echo @@{index}-rc=0@@", timeout=60)
                    result["rc"] = 0
                    _go(term, shell, "proj")
                result["denials"] = [line for line in _between(text, index).splitlines() if DENIED in line]
            except AssertionError as err:
                text = str(err)
                result["error"] = text if len(text) < 4000 else f"{text[:500]}\n[...]\n{text[-3000:]}"
                term.close()  # whatever hangs there, the next workflow gets a fresh shell
                term = _session(user, home, shell)
            result["seconds"] = time.monotonic() - result["seconds"]
            out[wf.name] = result
    except AssertionError as err:
        out["__shell__"] = str(err)
    finally:
        if term is not None:
            term.close()


def _unexpected(wf: Workflow, denials: list[str]) -> list[str]:
    return [line for line in denials if not any(re.search(g, line) for g in wf.genuine)]


@pytest.fixture(scope="module")
def results(workflow_home):
    user, home = workflow_home
    found: dict[str, dict] = {shell: {} for shell in SHELLS}
    started = time.monotonic()
    threads = [threading.Thread(target=_run_shell, args=(user, home, shell, found[shell])) for shell in SHELLS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sys.stderr.write(f"\nworkflows: {len(WORKFLOWS)} x {len(SHELLS)} shells in {time.monotonic() - started:.0f} s\n")
    for wf in WORKFLOWS:
        cells = []
        for shell in SHELLS:
            got = found[shell].get(wf.name)
            cells.append("missing" if got is None else "fails" if got["error"] or got["rc"] != 0
                         else f"denials({len(got['denials'])})" if _unexpected(wf, got["denials"])
                         else f"ok+{len(got['denials'])} genuine" if got["denials"] else "ok")
            cells[-1] += "" if got is None else f" {got['seconds']:.1f}s"
        sys.stderr.write(f"  {wf.name:<26} " + " ".join(f"{c:<18}" for c in cells) + "\n")
    return home, found


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("wf", WORKFLOWS, ids=[wf.name for wf in WORKFLOWS])
def test_workflow(results, shell, wf, request):
    home, found = results
    reason = wf.known.get(shell) or wf.known.get("*")
    if reason:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    assert "__shell__" not in found[shell], found[shell]["__shell__"]
    result = found[shell][wf.name]
    project = home / f"proj-{shell}"
    log_path = home / f"{wf.where}-{shell}" / ".wf" / f"{wf.name}.log"
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    assert result["error"] is None, result["error"]
    assert result["rc"] == 0, f"exit {result['rc']}; log:\n{log}"
    assert _unexpected(wf, result["denials"]) == [], result["denials"]
    for genuine in wf.genuine:
        assert any(re.search(genuine, line) for line in result["denials"]), (genuine, result["denials"])
    if wf.check is not None:
        wf.check(project, log)


def test_workflow_table_is_big_enough():
    assert len(WORKFLOWS) >= 30
    assert len({wf.name for wf in WORKFLOWS}) == len(WORKFLOWS)

