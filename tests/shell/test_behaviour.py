"""The shell behaves as without peninsula: job control, Ctrl-C, exit codes,
and the hook leaves alone what it should, saying why."""

import subprocess
import time

import pytest

from .conftest import PENINSULA, SHELLS, supervised


@pytest.mark.parametrize("shell", SHELLS)
def test_ctrl_c_and_ctrl_z(term_factory, shell):
    term = term_factory(shell)
    supervised(term)
    term.keys("-l", "sleep 300")
    term.keys("Enter")
    time.sleep(1)
    term.keys("C-c")
    term.run("echo after-interrupt")
    term.keys("-l", "sleep 301")
    term.keys("Enter")
    time.sleep(1)
    term.keys("C-z")
    term.wait_for(r"(Stopped|stopped|suspended)")
    text = term.run("jobs")
    assert "sleep 301" in text
    term.keys("-l", "fg")
    term.keys("Enter")
    time.sleep(1)
    term.keys("C-c")
    term.run("echo after-fg")


@pytest.mark.parametrize("shell", SHELLS)
def test_exit_status_of_commands(term_factory, shell):
    term = term_factory(shell)
    supervised(term)
    text = term.run("sh -c 'exit 3'; echo status=$?" if shell != "fish" else "sh -c 'exit 3'; echo status=$status")
    assert "status=3" in text


def test_shell_exit_code_is_passed_through(user):
    result = user.peninsula("shell", "--", "bash", "-c", "exit 7", env={"HOME": str(user.base)})
    assert result.returncode == 7, result.stderr


def test_noninteractive_shells_are_left_alone(user, home):
    result = user.run(["bash", "-c", f'eval "$({PENINSULA} hook bash)"; echo "s=${{PENINSULA_SESSION-none}}"'],
                      env={"HOME": str(home)})
    assert result.stdout.strip().endswith(b"s=none"), result


def test_disabled_shell_says_why(term_factory):
    term = term_factory("bash", env={"PENINSULA_DISABLE": "1"})
    term.wait_for(r"peninsula: not supervising this shell \(PENINSULA_DISABLE=1\)")
    text = term.run('echo "s=${PENINSULA_SESSION-none}"')
    assert "s=none" in text


def test_nested_shell_is_not_supervised_twice(term_factory):
    term = term_factory("bash")
    supervised(term)
    term.keys("-l", "bash -i")
    term.keys("Enter")
    term.wait_for(r"this shell runs inside session \S+ already")
    term.run('echo "inner=$$"')
    term.keys("-l", "exit")
    term.keys("Enter")
    text = term.run("python3 -m peninsula shell -- true; echo nest-rc=$?")
    assert "cannot nest" in text
    assert "nest-rc=125" in text


def test_prompt_hook_forks_nothing(term_factory, home):
    # Without direnv's hook (which runs `direnv export` at every prompt),
    # the prompt costs one syscall of the shell and no process.
    (home / ".bashrc").write_text(f'eval "$({PENINSULA} hook bash)"\n')
    term = term_factory("bash")
    supervised(term)
    pid = term.run("echo shellpid=$$").split("shellpid=")[-1].split()[0]
    trace = home / "trace.txt"
    tracer = subprocess.Popen(["strace", "-f", "-e", "trace=process", "-o", str(trace), "-p", pid],
                              stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    for _ in range(3):
        term.keys("Enter")
        time.sleep(0.3)
    time.sleep(0.5)
    tracer.terminate()
    tracer.wait(10)
    calls = [line for line in trace.read_text().splitlines() if "clone" in line or "fork" in line]
    assert calls == [], calls
    # And strace really sees forks when the shell makes them.
    tracer = subprocess.Popen(["strace", "-f", "-e", "trace=process", "-o", str(trace), "-p", pid],
                              stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    term.run("/bin/true")
    tracer.terminate()
    tracer.wait(10)
    assert "clone" in trace.read_text()


def test_history_is_saved_at_exit_inside_a_project(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.run("echo history-marker-42")
    term.keys("-l", "exit")
    term.keys("Enter")
    history = home / ".bash_history"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (history.exists() and "history-marker-42" in history.read_text()):
        time.sleep(0.2)
    assert "history-marker-42" in history.read_text()
    assert "denied" not in term.screen()


def test_terminal_size_follows_the_window(term_factory):
    term = term_factory("bash")
    supervised(term)
    term.tmux("resize-window", "-x", "123", "-y", "45")
    time.sleep(0.5)
    text = term.run("stty size")
    assert "45 123" in text
