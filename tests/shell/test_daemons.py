"""A daemon keeps the line it was started on (issue 13): its parent exits
before it makes its first trapped call, so the session judges the children
a process leaves at its exit (exit_group and exit are trapped), while their
line still leads to the shell. Started at a prompt outside projects, a
daemon is unconfined (tmux panes, ssh-agent); started in a project, it
stays confined to that project. A parent killed by a signal makes no call:
its children are judged as orphans are (strict). Each case has its
control: the same daemon typed in the other place.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from .conftest import SHELLS, supervised

# Forks a child that waits, then writes its arguments' files (an error to
# the temp dir), and exits at once (the parent gone before the child's first trapped call);
# with "kill", the parent dies by SIGKILL instead of exiting.
DAEMON = """import os, signal, sys, time
if os.fork() == 0:
    time.sleep(0.5)
    for path in sys.argv[2:]:
        try:
            with open(path, "w") as out:
                out.write("written\\n")
        except OSError as err:
            with open("/tmp/pt-daemon-" + os.path.basename(path) + ".err", "w") as out:
                out.write(err.strerror + "\\n")
    os._exit(0)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _wait_for(path: Path, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.05)
    return False


def _outcome(path: Path) -> str:
    """'written', or the error the daemon got, once it has tried."""
    err = Path(f"/tmp/pt-daemon-{path.name}.err")  # the temp dirs: writable even when strict
    assert _wait_for(path) or _wait_for(err), f"the daemon never tried {path}"
    return path.read_text().strip() if path.exists() else err.read_text().strip()


@pytest.fixture
def daemon(user, home):
    return user.write(home / "daemon.py", DAEMON)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_daemon_started_outside_projects_is_unconfined(term_factory, home, daemon, shell):
    tag = uuid.uuid4().hex[:8]
    term = term_factory(shell)
    supervised(term)
    out = home / "out" / f"outside-{tag}"
    term.run(f"python3 {daemon} exit {out}")
    assert _outcome(out) == "written"


@pytest.mark.parametrize("shell", SHELLS)
def test_a_daemon_started_in_a_project_stays_confined_to_it(term_factory, home, daemon, shell):
    tag = uuid.uuid4().hex[:8]
    term = term_factory(shell)
    supervised(term)
    term.run("cd proj")
    inside, outside = home / "proj" / f"inside-{tag}", home / "out" / f"escaped-{tag}"
    term.run(f"python3 {daemon} exit {inside} {outside}")
    assert _outcome(outside) == "Permission denied"
    assert _outcome(inside) == "written"  # its project, as for any command started there
    term.run("cd ~")
    # Leaving lifts nothing for it; the control: typed here, the same daemon writes.
    again = home / "out" / f"control-{tag}"
    term.run(f"python3 {daemon} exit {again}")
    assert _outcome(again) == "written"


def test_a_daemon_whose_parent_is_killed_is_strict(term_factory, home, daemon):
    """No exit call: the child is judged as an orphan never seen (strict),
    even outside projects, and so never laxer than its line."""
    tag = uuid.uuid4().hex[:8]
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    inside, outside = home / "proj" / f"killed-in-{tag}", home / "out" / f"killed-out-{tag}"
    term.run(f"python3 {daemon} kill {inside} {outside}")
    assert _outcome(outside) == "Permission denied"
    assert _outcome(inside) == "Permission denied"  # strict: the temp dirs only


def test_a_tmux_server_started_outside_projects_has_normal_panes(term_factory, home, user):
    tag = uuid.uuid4().hex[:8]
    term = term_factory("bash")
    supervised(term)
    out = home / "out" / f"pane-{tag}"
    server = f"pt-daemon-{tag}"
    try:
        term.run(f"tmux -L {server} -f /dev/null new-session -d 'echo pane > {out}; sleep 30'")
        assert _wait_for(out) and out.read_text() == "pane\n"
    finally:
        term.run(f"tmux -L {server} kill-server")


@pytest.mark.parametrize("shell", SHELLS)
def test_ssh_agent_started_at_a_prompt_outside_projects(term_factory, home, shell):
    """`eval "$(ssh-agent -s)"` (fish: `ssh-agent -c | source`): the
    agent's daemon is non-dumpable, so a strict verdict hung it."""
    term = term_factory(shell)
    supervised(term)
    start, status = ("ssh-agent -c | source", "$status") if shell == "fish" else ('eval "$(ssh-agent -s)"', "$?")
    text = term.run(f"{start}; ssh-add -l; echo rc={status}", timeout=20)
    assert "The agent has no identities." in text and "rc=1" in text
    term.run("kill $SSH_AGENT_PID")
