"""An orphan of a session that started before anything in the session was
confined is not confined (policy/orphans.py): the user's own tmux typed at
a prompt outside projects in a fresh terminal has normal panes (issue 13).
Once anything in the session was confined (the shell in a project, a
process that walked into one), a later orphan is strict as before: it may
come from a confined line. Each refusal has its control: the same daemon
writes the same file when nothing was confined yet. The tmux server that is
not confined is outside a confined client's reach (its listener is judged
outside); a sibling the shell's pid makes (clone(CLONE_PARENT)) is no orphan
of the session and stays strict."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from .conftest import supervised

# fork, setsid, fork; the middle one exits; the daemon waits until it is
# reparented (to the session's subreaper) before its first trapped call,
# then tries target and reports in the temp dir (writable even to ORPHAN).
DAEMON = """import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
middle = os.getpid()
if os.fork():
    os._exit(0)
while os.getppid() == middle:
    time.sleep(0.01)
time.sleep(float(sys.argv[3]))
try:
    with open(sys.argv[1], "w") as handle:
        handle.write("x")
    result = "wrote"
except OSError as err:
    result = f"refused {err.errno}"
with open(sys.argv[2], "w") as handle:
    handle.write(result + "\\n")
"""


def _wait(path: Path, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


@pytest.fixture
def daemon(user, home):
    script = user.write(home / "daemon.py", DAEMON)
    tag = uuid.uuid4().hex[:8]
    reports: list[Path] = []

    def line(target: Path, name: str, delay: float = 0.0) -> tuple[str, Path]:
        report = Path(f"/tmp/pt-orphans-{tag}-{name}")
        reports.append(report)
        return f"python3 {script} {target} {report} {delay}", report

    yield line
    for report in reports:
        report.unlink(missing_ok=True)


def _tmux(term, server: str, command: str) -> None:
    term.run(f"unset TMUX; tmux -L {server} -f /dev/null new-session -d \"{command}\"")


def test_a_daemon_typed_outside_a_fresh_session_is_not_confined_but_one_after_a_walk_into_a_project_is(term_factory, home, daemon):
    term = term_factory("bash")
    supervised(term)
    out = home / "out"
    command, report = daemon(out / "fresh", "fresh")
    term.run(command)
    assert _wait(report) == "wrote" and (out / "fresh").exists(), term.screen()
    # The shell stays at ~; a command it started walks into the project:
    # that command and all it starts are confined from then on.
    command, report = daemon(out / "walked", "walked")
    term.run(f"sh -c 'cd proj && {command}'")
    assert _wait(report) == "refused 13" and not (out / "walked").exists(), term.screen()
    # Since then an orphan may come from that line: strict, even at ~.
    command, report = daemon(out / "later", "later")
    term.run(command)
    assert _wait(report) == "refused 13" and not (out / "later").exists(), term.screen()


def test_a_daemon_stays_strict_once_the_shell_was_in_a_project(term_factory, home, daemon):
    term = term_factory("bash")
    supervised(term)
    out = home / "out"
    # Started in the project, writing after the shell left it.
    inside, inside_report = daemon(out / "inside", "inside", delay=2.0)
    term.run("cd proj")
    term.prompt()
    term.run(inside)
    term.run("cd ~")
    term.prompt()
    term.run("echo ok > ~/out/shell-control")
    assert (out / "shell-control").read_text() == "ok\n"  # the shell itself lifted
    assert _wait(inside_report) == "refused 13" and not (out / "inside").exists(), term.screen()
    # Started at ~ after the shell had been in a project: strict.
    after, after_report = daemon(out / "after", "after")
    term.run(after)
    assert _wait(after_report) == "refused 13" and not (out / "after").exists(), term.screen()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_panes_of_a_tmux_started_outside_a_fresh_session(term_factory, home, shell):
    term = term_factory(shell)
    supervised(term)
    out, proj = home / "out", home / "proj"
    server = f"pt-orph-{uuid.uuid4().hex[:8]}"
    try:
        _tmux(term, server, "touch ~/out/from-pane; sleep 30")
        # A pane's command that walks into the project is confined there, as
        # a shell started inside the session is (README).
        _tmux(term, server, f"cd {proj} && touch in-proj && touch ~/out/after-cd 2>after-cd.err; sleep 30")
        deadline = time.monotonic() + 15
        err = proj / "after-cd.err"
        while not ((out / "from-pane").exists() and err.exists() and err.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (out / "from-pane").exists(), term.screen()
        assert (proj / "in-proj").exists(), term.screen()
        assert not (out / "after-cd").exists(), term.screen()
        assert "Permission denied" in err.read_text()
    finally:
        term.run(f"tmux -L {server} kill-server")


def test_panes_of_a_tmux_started_after_the_shell_was_in_a_project_are_strict(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    out = home / "out"
    term.run("cd proj")
    term.prompt()
    term.run("cd ~")
    term.prompt()
    server = f"pt-orph-{uuid.uuid4().hex[:8]}"
    ran = Path(f"/tmp/{server}.ran")
    try:
        _tmux(term, server, f"touch ~/out/from-pane 2>{ran}.err; touch {ran}; sleep 30")  # ran: after the error is written
        deadline = time.monotonic() + 15
        while not ran.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ran.exists(), term.screen()  # the pane ran (the temp dirs stay writable to it)
        assert not (out / "from-pane").exists(), term.screen()
        assert "Permission denied" in Path(f"{ran}.err").read_text()
    finally:
        term.run(f"tmux -L {server} kill-server")
        for path in (ran, Path(f"{ran}.err")):
            path.unlink(missing_ok=True)


def test_an_orphan_of_a_nested_run_whose_head_died_stays_strict(term_factory, home, daemon):
    term = term_factory("bash")
    supervised(term)
    out = home / "out"
    command, report = daemon(out / "fresh", "fresh")
    term.run(command)
    assert _wait(report) == "wrote", term.screen()  # control: nothing confined yet
    # A nested run at ~ (the shell stays outside): its daemon outlives the
    # run's head and is reparented to the session's subreaper.
    command, report = daemon(out / "nested", "nested", delay=3.0)
    term.run(f"python3 -m peninsula run --project {home}/proj -- {command} & sleep 1; kill -9 $! 2>/dev/null; wait")
    assert _wait(report) == "refused 13" and not (out / "nested").exists(), term.screen()


# The shell's pid, running a program it exec'd in the project, makes a
# sibling of the shell (a child of the supervisor, itself a child of the
# session's subreaper): not an orphan to judge by its own start.
CLONE_PARENT = """import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
pid = libc.syscall(56, 0x8000 | 17, 0, 0, 0, 0)  # clone(CLONE_PARENT | SIGCHLD), no new stack: as fork
if pid == 0:
    ppid = os.getppid()
    try:
        with open(sys.argv[1], "w") as handle:
            handle.write("x")
        result = "wrote"
    except OSError as err:
        result = f"refused {err.errno}"
    with open(sys.argv[2], "w") as handle:
        handle.write(f"{result} {ppid}\\n")
    os._exit(0)
time.sleep(5)
"""


def test_a_sibling_the_shell_makes_in_a_project_is_not_judged_as_an_early_orphan(term_factory, home, user):
    script = user.write(home / "clone_parent.py", CLONE_PARENT)
    report = Path(f"/tmp/pt-orphans-{uuid.uuid4().hex[:8]}-sibling")
    term = term_factory("bash")
    supervised(term)
    shell_pid = int(term.run("echo pid=$$").rsplit("pid=", 1)[1].split()[0])
    supervisor = int(Path(f"/proc/{shell_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    term.run("cd proj")
    term.prompt()
    try:
        term.keys(f"exec python3 {script} {home}/out/sibling {report}", "Enter")
        result = _wait(report)
        assert result == f"refused 13 {supervisor}", result  # it is the shell's sibling, and strict
        assert not (home / "out" / "sibling").exists()
    finally:
        report.unlink(missing_ok=True)


def test_a_confined_client_cannot_drive_a_tmux_server_started_outside(term_factory, home, user):
    term = term_factory("bash")
    supervised(term)
    out = home / "out"
    server = f"pt-orph-{uuid.uuid4().hex[:8]}"
    sock = f"/tmp/tmux-{user.uid}/{server}"
    try:
        _tmux(term, server, "sleep 60")
        # Control: an unconfined client makes the (unconfined) server start a window.
        term.run(f"tmux -S {sock} new-window 'touch ~/out/by-window; sleep 30'")
        deadline = time.monotonic() + 15
        while not (out / "by-window").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (out / "by-window").exists(), term.screen()
        term.run("cd proj")
        term.prompt()
        text = term.run(f"tmux -S {sock} new-window 'touch ~/out/escaped; sleep 30'; echo st=$?")
        assert "st=0" not in text, text
        time.sleep(1)
        assert not (out / "escaped").exists(), text
    finally:
        term.run("cd ~")
        term.prompt()
        term.run(f"tmux -S {sock} kill-server")


def test_an_interactive_pane_shell_types_as_a_normal_shell(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    out, proj = home / "out", home / "proj"
    server = f"pt-orph-{uuid.uuid4().hex[:8]}"

    def typed(line: str, done: Path) -> None:
        term.run(f"tmux -L {server} send-keys '{line}' Enter")
        deadline = time.monotonic() + 15
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert done.exists(), term.run(f"tmux -L {server} capture-pane -p")

    try:
        _tmux(term, server, "bash -i")  # the user's bash, with its rc (the hooks)
        typed("echo typed > ~/out/typed", out / "typed")
        typed(f"cd {proj}; echo in > in-pane; {{ echo out > ~/out/after-cd; }} 2>after-cd.err; touch done", proj / "done")
        assert (proj / "in-pane").exists()
        assert not (out / "after-cd").exists()
        assert "Permission denied" in (proj / "after-cd.err").read_text()
    finally:
        term.run(f"tmux -L {server} kill-server")


def test_a_daemon_started_on_the_line_that_enters_a_project_is_strict(term_factory, home, daemon):
    term = term_factory("bash")
    supervised(term)
    out = home / "out"
    command, report = daemon(out / "fresh", "fresh")
    term.run(command)
    assert _wait(report) == "wrote", term.screen()  # control: nothing confined yet
    # The shell's cd confines at once (its chdir is trapped), before any
    # prompt or other process in the project is judged.
    command, report = daemon(out / "entering", "entering")
    term.run(f"cd proj && {command}")
    assert _wait(report) == "refused 13" and not (out / "entering").exists(), term.screen()
