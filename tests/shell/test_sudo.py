"""sudo from a supervised shell: works outside projects, refused inside,
and the mechanism is closed to confined processes (privileged.py)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from .conftest import SHELLS, supervised

RULE = "{user} ALL=(root) NOPASSWD: /usr/bin/true, /usr/bin/id -u, /usr/bin/sleep 30, /usr/bin/touch {marker}\n"
UMASK_MARKER = Path("/tmp/peninsula-test-sudo-umask")
REFUSED = "sudo refused: this command runs confined to "
DIRECT = ("python3 -c 'import os, sys; from peninsula.shell.privileged import run_outside; "
          "sys.exit(run_outside(os.environ[\"PENINSULA_SESSION_DIR\"], \"/usr/bin/sudo\", [\"sudo\", \"-n\", \"id\", \"-u\"]))'")


@pytest.fixture
def sudo_rule(user):
    path = Path(f"/etc/sudoers.d/peninsula-test-{user.name}")
    path.write_text(RULE.format(user=user.name, marker=UMASK_MARKER))
    path.chmod(0o440)
    try:
        check = subprocess.run(["visudo", "-cf", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        # Positive control: without peninsula the rule works for this user.
        result = user.run(["sudo", "-n", "id", "-u"])
        assert result.returncode == 0 and result.stdout == b"0\n", result.stderr
        yield
    finally:
        path.unlink()
        UMASK_MARKER.unlink(missing_ok=True)


def _lines(text: str, after: str) -> list[str]:
    return text.split(after, 1)[1].splitlines()


@pytest.mark.parametrize("shell", SHELLS)
def test_sudo_works_outside_projects(term_factory, sudo_rule, shell):
    term = term_factory(shell)
    supervised(term)
    status = "$status" if shell == "fish" else "$?"
    text = term.run(f"echo mark-a; sudo -n id -u; echo rc={status}")
    assert _lines(text, "mark-a\n")[:2] == ["0", "rc=0"], text
    # Called by a script started at the prompt, with its exit status.
    text = term.run(f"echo mark-b; sh -c 'sudo -n true && sudo -n false; echo inner=$?'; echo rc={status}")
    inner = _lines(text, "mark-b\n")
    assert "inner=1" in inner and "rc=0" in inner, text  # false is not in the rule: sudo says so, exits 1
    # Negative control: the real binary, not through the session, has no privilege here.
    text = term.run(f"echo mark-c; command /usr/bin/sudo -n true; echo rc={status}")
    assert "no new privileges" in text and "rc=1" in _lines(text, "mark-c\n"), text
    assert "peninsula: denied" not in text


def test_sudo_keeps_job_control_and_signals(term_factory, sudo_rule):
    term = term_factory("bash")
    supervised(term)
    # sudo runs in the shell's foreground job: Ctrl-Z stops it with the job,
    # fg continues it, Ctrl-C from the terminal ends it, and the shell sees
    # the job end by SIGINT.
    term.tmux("send-keys", "-l", "sudo -n sleep 30")
    term.tmux("send-keys", "Enter")
    time.sleep(1.5)
    term.keys("C-z")
    term.wait_for(r"Stopped\s+sudo -n sleep 30")
    text = term.run("ps -o stat= -C sleep")
    assert "T" in text.split("ps -o stat= -C sleep")[-1], text
    term.tmux("send-keys", "-l", "fg")
    term.tmux("send-keys", "Enter")
    time.sleep(1.0)
    term.keys("C-c")
    text = term.run("echo after=$?")
    assert "after=130" in text, text
    # kill from the shell (not the terminal) reaches it through the shim.
    text = term.run("sudo -n sleep 30 & sleep 1; kill %1; wait %1; echo killed=$?")
    assert "killed=143" in text, text
    # The caller's umask reaches the program, as it would without peninsula
    # (sudo unions it with its own 022: 077 shows as mode 600, 022 as 644).
    UMASK_MARKER.unlink(missing_ok=True)
    term.run(f"umask 077; sudo -n touch {UMASK_MARKER}; umask 022")
    assert UMASK_MARKER.stat().st_uid == 0 and UMASK_MARKER.stat().st_mode & 0o777 == 0o600
    text = term.run("pgrep -x sleep || echo none-left")
    assert "none-left" in text.split("pgrep -x sleep ||")[-1], text


def test_sudo_is_refused_inside_a_project(term_factory, sudo_rule, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    text = term.run("echo mark-a; sudo -n true; echo rc=$?")
    after = _lines(text, "mark-a\n")
    assert after[0].startswith(f"peninsula: {REFUSED}{home / 'proj'}"), text
    assert "leave the project (cd out of it)" in after[0]
    assert after[1] == "rc=1", text


def test_confined_job_cannot_use_the_helper_after_the_shell_left(term_factory, sudo_rule, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    # Started in the project, acting once the shell is back outside: through
    # the shim and by talking to the control socket itself.
    term.run(f"(sleep 3; sudo -n id -u > shim.out 2>&1; echo rc=$? >> shim.out; {DIRECT} > direct.out 2>&1; "
             "echo rc=$? >> direct.out) &")
    term.run("cd ..")
    term.prompt()
    # Positive control: the shell itself is outside now, and sudo works for it.
    text = term.run("echo mark-a; sudo -n id -u")
    assert _lines(text, "mark-a\n")[0] == "0", text
    deadline = time.monotonic() + 20
    while not (home / "proj" / "direct.out").exists() or "rc=" not in (home / "proj" / "direct.out").read_text():
        assert time.monotonic() < deadline, term.screen()
        time.sleep(0.2)
    for name in ("shim.out", "direct.out"):
        out = (home / "proj" / name).read_text()
        assert REFUSED in out and out.endswith("rc=1\n"), (name, out)
        assert "\n0\n" not in "\n" + out


def test_confined_process_cannot_replace_the_shims(term_factory, sudo_rule, home):
    term = term_factory("bash")
    supervised(term)
    shim = term.run('echo "shim=$(command -v sudo)"').split("shim=")[-1].split()[0]
    assert shim.endswith("/bin/sudo") and "peninsula" in shim, shim
    original = Path(shim).read_text()
    term.run("cd proj")
    term.prompt()
    text = term.run(f"echo evil > {shim}; rm -f {shim}; mv {shim} {shim}.x; echo tried")
    assert "peninsula: denied" in text, text
    assert Path(shim).read_text() == original
    # Positive control: the same writes from outside the project (the user's own shell) succeed.
    term.run("cd ..")
    term.prompt()
    term.run(f"cp {shim} {shim}.copy && echo changed >> {shim}.copy")
    assert Path(shim + ".copy").read_text().endswith("changed\n")
