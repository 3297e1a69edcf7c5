"""Attacks on the judging of the children a process leaves (its exit is
trapped, shell/judge.py judge_children), from the review of that change.

Each way a process can leave children whose parent goes away (exit_group,
the main thread's exit, a thread's, exec from a thread, vfork, a subreaper,
a pid namespace, a parent killed, auto-reaped children, CLONE_PARENT,
clone3, a seize of the exiting parent) is typed in the project, where its
payload must be refused ~/out, and at a prompt outside projects, the
control, where it writes. And a process that walks into a project after its
child was judged cannot make that child write for it (ptrace); a parent
with more children than one page of its children list has them all judged;
an inner fish (whose I/O thread exits after each spawn) keeps its own job.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from cbuild import compile_c

from .conftest import supervised

HELPERS = Path(__file__).parent / "exit_helpers"
MODES = ["direct", "daemon", "thread_race", "main_exit", "thread_exit", "exec_nonleader", "vfork",
         "subreaper", "subreaper_exit", "pidns", "kill_parent", "sigchld_ign", "clone_parent", "clone3", "ptrace_parent"]
# clone3 is ENOSYS in the session wherever it is typed; thread_race's
# children made while exit_group runs may be judged strict (toward refusing);
# main_exit's process ends by its last thread's exit (not exit_group, which
# alone is trapped), so its children are orphans never seen: strict.
NO_CONTROL = {"clone3", "thread_race", "main_exit"}


def _helper(name: str) -> Path:
    return compile_c((HELPERS / f"{name}.c").read_text(), name, ("-pthread",))


def _outcomes(results: dict[str, Path], wait: float = 4.0) -> dict[str, list[str]]:
    time.sleep(wait)
    return {mode: res.read_text().split("\n")[:-1] if res.exists() else [] for mode, res in results.items()}


def _run_modes(term, atk: Path, home: Path, where: str, tag: str) -> dict[str, Path]:
    results = {}
    for mode in MODES:
        results[mode] = Path(f"/tmp/pt-ex-{tag}-{where}-{mode}.res")
        term.run(f"{atk} {mode} {home}/out/{where}-{mode}-{tag} {results[mode]}", timeout=30)
    return results


def test_no_way_of_leaving_children_lets_a_project_line_out(term_factory, home):
    tag = uuid.uuid4().hex[:6]
    atk = _helper("atk")
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    inside = _outcomes(_run_modes(term, atk, home, "in", tag))
    term.run("cd ~")
    term.prompt()
    outside = _outcomes(_run_modes(term, atk, home, "out", tag))
    for mode in MODES:
        print(f"{mode:15} in project: {inside[mode]}\n{'':15} outside:    {outside[mode]}")
    escaped = sorted(p.name for p in (home / "out").iterdir() if p.name.startswith("in-"))
    assert not escaped
    assert all(not any(line.startswith("written") for line in lines) for lines in inside.values())
    for mode in MODES:
        if mode not in NO_CONTROL:
            assert any(line.startswith("written") for line in outside[mode]), (mode, outside[mode])


@pytest.mark.parametrize("mode", ["nothread", "trapped", "thread"])
def test_a_process_that_walks_in_cannot_make_its_earlier_child_write(term_factory, home, mode):
    """thread: one of its threads exited before it walked in (the children
    must not be judged then); trapped: the child made a call before (it was
    judged then, by its line, unconfined): ptrace of it is refused."""
    tag = uuid.uuid4().hex[:6]
    prog = _helper("lateenter")
    term = term_factory("bash")
    supervised(term)
    res = Path(f"/tmp/pt-ex-late-{tag}-{mode}.res")
    target = home / "out" / f"late-{mode}-{tag}"
    term.run(f"{prog} {mode} {home}/proj {target} {res}", timeout=30)
    time.sleep(0.5)
    assert res.exists(), term.screen()
    assert not target.exists(), res.read_text()
    assert "refused errno 13" in res.read_text()  # its own write, after it walked in
    # The control: the same steps, walking into a directory that is no project.
    control_res, control = Path(f"/tmp/pt-ex-late-{tag}-{mode}-c.res"), home / "out" / f"late-{mode}-{tag}-c"
    term.run(f"{prog} {mode} {home}/out {control} {control_res}", timeout=30)
    time.sleep(0.5)
    assert control.exists(), control_res.read_text() if control_res.exists() else term.screen()


def test_a_parent_with_many_children_has_them_all_judged(term_factory, home):
    """1000 children: more than one page of /proc/PID/task/TID/children;
    the last one (a daemon typed outside projects) is judged unconfined."""
    tag = uuid.uuid4().hex[:6]
    atk = _helper("atk")
    term = term_factory("bash")
    supervised(term)
    res = Path(f"/tmp/pt-ex-{tag}-many.res")
    term.run(f"ATK_N=1000 {atk} many_children {home}/out/many-{tag} {res}", timeout=60)
    assert any(line.startswith("written") for line in _outcomes({"many": res})["many"])


@pytest.mark.parametrize("inner", ["bash", "fish"])
def test_an_inner_shell_keeps_its_own_background_job(term_factory, home, inner):
    """An inner shell started at an unconfined prompt starts a job, then
    walks into the project. The job made no trapped call, so it is judged
    when first asked about, by its line as it is then: with the shell, which
    may signal it. fish's I/O thread exits after each spawn: that exit must
    not judge the job early (unconfined), which made `kill %1` refused."""
    term = term_factory("bash")
    supervised(term)
    term.tmux("send-keys", "-l", f"{inner} -i")
    term.tmux("send-keys", "Enter")
    time.sleep(3)
    term.run("sleep 1000 &", timeout=10)
    time.sleep(3)
    term.run("cd proj", timeout=10)
    text = term.run("kill %1", timeout=10)
    assert "denied kill" not in text
