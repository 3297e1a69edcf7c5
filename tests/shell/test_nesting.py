"""`peninsula run` inside a supervised shell (issue 14): the session's
supervisor judges the run's command by the intersection of the caller's
policy and the run's own. Each refusal has its control: the same write
from the shell itself (judged by the project alone) succeeds."""

import json
import os

import pytest

from .conftest import supervised

RUN = "python3 -m peninsula run"


def status(shell: str) -> str:
    return "$status" if shell == "fish" else "$?"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_nested_run_is_judged_by_both(term_factory, home, shell):
    term = term_factory(shell)
    supervised(term)
    term.run("cd proj")
    term.prompt()
    term.run("mkdir sub; echo control > x-control")
    assert (home / "proj" / "x-control").read_text() == "control\n"  # the project alone allows x
    text = term.run(f"{RUN} --project sub -- sh -c 'echo a > sub/in; echo b > x; exit 7'; echo st={status(shell)}")
    assert (home / "proj" / "sub" / "in").read_text() == "a\n"
    assert not (home / "proj" / "x").exists()
    assert "st=7" in text  # the command's own status
    assert "EBUSY" not in text and "cannot nest" not in text
    assert "outside every writable root of this nested run" in text  # the notice says which layer refused


def test_read_only_and_no_widening(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    term.run("touch g-control")
    assert (home / "proj" / "g-control").exists()
    text = term.run(f"{RUN} --read-only -- touch f; echo st=$?")
    assert not (home / "proj" / "f").exists()
    assert "st=1" in text
    # ~/out is outside the project: the nested run cannot widen its caller.
    text = term.run(f"{RUN} --write ~/out -- sh -c 'echo w > ~/out/w'; echo st=$?")
    assert "--write ~/out: not writable here" in text or f"--write {home}/out: not writable here" in text
    assert not (home / "out" / "w").exists()
    assert "st=2" in text
    # Control: outside the project the shell is unconfined, and the same run writes there.
    term.run("cd ~")
    term.prompt()
    term.run(f"{RUN} --write ~/out -- sh -c 'echo w > ~/out/w'; echo st=$?")
    assert (home / "out" / "w").read_text() == "w\n"
    # ...but still only where the run allows: its own policy holds in an unconfined shell too.
    text = term.run(f"{RUN} --project proj -- sh -c 'echo z > out/z'; echo st=$?")
    assert not (home / "out" / "z").exists()
    assert "st=2" in text


def test_walltime_report_and_run_in_run(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    text = term.run(f"{RUN} --limit-walltime 1 --report ../out/r1.json -- sh -c 'sleep 60 & sleep 60'; echo st=$?",
                    timeout=30)
    assert "st=124" in text
    report = json.loads((home / "out" / "r1.json").read_text()) if (home / "out" / "r1.json").exists() else None
    # The head is judged by the caller (the project): ../out is not writable to it either.
    assert report is None
    text = term.run(f"{RUN} --limit-walltime 1 --report r1.json -- sh -c 'sleep 60 & sleep 60'; echo st=$?",
                    timeout=30)
    report = json.loads((home / "proj" / "r1.json").read_text())
    assert report["status"] == "timed out" and report["returncode"] == 124
    assert "wall-time limit of 1s reached" in text
    term.run("mkdir -p sub")
    text = term.run(f"{RUN} --project sub --report r2.json -- sh -c 'echo > x; echo > y; true'; echo st=$?")
    report = json.loads((home / "proj" / "r2.json").read_text())
    assert report["status"] == "ok" and report["denials"] == 2
    assert {d["path"] for d in report["first_denials"]} == {str(home / "proj" / "x"), str(home / "proj" / "y")}
    # A run inside a nested run: Both(Both(project, sub), sub/deeper).
    term.run("mkdir -p sub/deeper")
    text = term.run(f"{RUN} --project sub -- {RUN} --project sub/deeper -- "
                    "sh -c 'echo a > sub/deeper/in; echo b > sub/no'; echo st=$?")
    assert (home / "proj" / "sub" / "deeper" / "in").read_text() == "a\n"
    assert not (home / "proj" / "sub" / "no").exists()
    assert "st=2" in text


def test_options_that_cannot_nest_are_refused(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    text = term.run(f"{RUN} --unshare-net -- touch never; echo st=$?")
    assert "cannot nest inside this supervised session: --unshare-*" in text
    assert "st=125" in text
    assert not (home / "never").exists()


def test_log_nested_is_appended_by_the_session(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    term.run(f"{RUN} --read-only --log nested.jsonl -- sh -c 'echo > x; echo > ../out/y'; echo st=$?")
    lines = [json.loads(line) for line in (home / "proj" / "nested.jsonl").read_text().splitlines()]
    assert [entry["path"] for entry in lines] == [str(home / "proj" / "x"), str(home / "out" / "y")]
    assert "nested run" in lines[0]["reason"] and lines[1]["reason"] == "outside every writable root"
    # The log is opened by the run, under its caller's policy: not outside
    # the project. Said and skipped, as a --write root there is (the
    # session's own log still has every denial).
    text = term.run(f"{RUN} --log ../out/log.jsonl -- true; echo st=$?")
    assert "--log ../out/log.jsonl: not writable here" in text and "st=0" in text
    assert not (home / "out" / "log.jsonl").exists()


def test_orphans_of_a_nested_run_stay_nested(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    term.run("mkdir -p sub")
    # The background subshell makes no trapped call before its parent exits,
    # so it is first judged after it was reparented to the run's process.
    text = term.run(f"{RUN} --project sub -- sh -c '(sleep 1; echo o > orphan; echo o > sub/orphan) & exit 0'; echo st=$?")
    assert "st=0" in text
    assert (home / "proj" / "sub" / "orphan").read_text() == "o\n"  # control: the orphan ran and wrote
    assert not (home / "proj" / "orphan").exists()
    # status and check inside a nested run speak of both layers.
    text = term.run(f"{RUN} --project sub -- sh -c 'python3 -m peninsula status; python3 -m peninsula check x'")
    assert "a nested peninsula run, inside: confined to" in text
    assert "outside every writable root of this nested run" in text


def test_a_foreign_notify_sandbox_gets_ebusy_and_the_session_says_why(term_factory, home):
    from cbuild import compile_c
    from reliability.test_nesting import OTHER_SANDBOX_C

    other = compile_c(OTHER_SANDBOX_C, "other_sandbox")
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    text = term.run(f"{other} touch ran; echo st=$?")
    assert "seccomp: Device or resource busy" in text and "st=2" in text  # the kernel's EBUSY, unchanged
    assert "asked for a seccomp notify listener of its own" in text
    assert not (home / "proj" / "ran").exists()
    # Outside the project the shell is unconfined, and the notice says it all the same.
    term.run("cd ~")
    term.prompt()
    text = term.run(f"{other} true; echo st=$?")
    assert text.count("asked for a seccomp notify listener of its own") == 2


FILL_THEN_DENY = """
import fcntl
import os
flags = fcntl.fcntl(2, fcntl.F_GETFL)
fcntl.fcntl(2, fcntl.F_SETFL, flags | os.O_NONBLOCK)
for size in (4096, 1):
    try:
        while True:
            os.write(2, b"x" * size)
    except BlockingIOError:
        pass
fcntl.fcntl(2, fcntl.F_SETFL, flags)  # full, and blocking again
try:
    open("x", "w")
except PermissionError:
    with open("sub/refused", "w") as out:
        out.write("refused")
"""


def test_a_full_stderr_pipe_does_not_stall_the_session(term_factory, home, user):
    # The run fills its stderr pipe (nobody reads it), then makes a denial:
    # the notice must not block the session's supervisor on that pipe.
    user.write(home / "proj" / "fill.py", FILL_THEN_DENY)
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    term.run("mkdir -p sub; mkfifo jam; (sleep 60 < jam &); exec 7>jam")  # a reader that never reads
    ran = term.run(f"{RUN} --project sub -- python3 fill.py 2>&7; echo st=$?")
    term.run("echo alive > alive", timeout=20)
    assert (home / "proj" / "alive").read_text() == "alive\n"
    assert "st=0" in ran.split("fill.py")[-1], (ran, os.listdir(home / "proj"), os.listdir(home / "proj" / "sub"))
    assert (home / "proj" / "sub" / "refused").read_text() == "refused"
    assert not (home / "proj" / "x").exists()


def test_a_read_only_stderr_is_not_reopened_for_writing(term_factory, home):
    # The run's "stderr" is ~/.bashrc opened read-only (reads are not
    # judged): the supervisor must not reopen it for writing its notices.
    before = (home / ".bashrc").read_bytes()
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    term.run("mkdir -p sub")
    text = term.run(f"{RUN} --project sub -- sh -c 'echo > x' 2<~/.bashrc; echo st=$?")
    assert (home / ".bashrc").read_bytes() == before
    assert not (home / "proj" / "x").exists()
    assert f"denied open of {home}/proj/x" in text  # the notice went to the session's terminal instead
