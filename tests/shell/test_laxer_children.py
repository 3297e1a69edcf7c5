"""A process that walks into a project takes its children along, and
gpg-agent's place is where gpg puts it (from review 2 of the exit trap).

1. A child that shares its parent's memory (clone(CLONE_VM) without
   CLONE_THREAD, or a MAP_SHARED page it polls), or that the parent could
   ptrace, process_vm_writev, pidfd_getfd or prlimit, judged unconfined
   before its parent walked into a project, must not write for the parent
   after: the walk-in confines the children already judged too.
2. With a runtime dir (/run/user/UID) whose gnupg/ does not exist yet at
   the session's start, a gpg-agent started later outside projects puts
   its socket in /run/user/UID/gnupg: it serves the project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from cbuild import compile_c

from .conftest import supervised


HELPER = Path(__file__).parent / "exit_helpers" / "late2.c"


def _late2():
    return compile_c(HELPER.read_text(), "late2", ())


def _kill_children(text: str) -> None:
    """The helper's child, by the pid it logged (a confined parent may not kill it)."""
    import re, signal

    for pid in re.findall(r"child pid (\d+)", text):
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.parametrize("mode", ["clonevm", "shared", "vmwrite", "preattach", "prlimit", "getfd"])
def test_a_laxer_child_acts_for_a_parent_that_walked_in(term_factory, home, mode):
    prog = _late2()
    tag = uuid.uuid4().hex[:6]
    term = term_factory("bash")
    supervised(term)
    log = Path(f"/tmp/pt-r2-{tag}.log")
    try:
        term.run(f"{prog} {mode} {home}/proj {home}/out/in-{tag} 2>{log} </dev/null >/dev/null", timeout=30)
        time.sleep(1.5)
        inside = (home / "out" / f"in-{tag}").exists()
        print(mode, "in project:", log.read_text())
        _kill_children(log.read_text())
        term.run(f"{prog} {mode} {home}/out {home}/out/ctl-{tag} 2>{log} </dev/null >/dev/null", timeout=30)
        time.sleep(1.5)
        text = log.read_text()
        print(mode, "control:", text)
        # the route itself works unconfined: the child wrote, or the call was answered
        control = (home / "out" / f"ctl-{tag}").exists() if mode in ("clonevm", "shared", "vmwrite") else (
            ": ok" in text and "not permitted" not in text.split("parent own write")[1].split("kill child")[0])
    finally:
        if log.exists():
            _kill_children(log.read_text())
    assert control, "control failed"
    assert not inside, f"{mode}: the laxer child wrote ~/out for its confined parent"


def test_gpg_agent_started_later_with_a_fresh_runtime_dir(term_factory, home, user):
    runtime = Path(f"/run/user/{user.uid}")
    created = not runtime.exists()
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chown(runtime, user.uid, user.gid)
    shutil.rmtree(runtime / "gnupg", ignore_errors=True)
    try:
        term = term_factory("bash", env={"XDG_RUNTIME_DIR": str(runtime)})
        supervised(term)
        term.run("mkdir -p -m 700 ~/.gnupg; gpgconf --kill gpg-agent; gpg-connect-agent 'GETINFO version' /bye; gpgconf --list-dirs agent-socket",
                 timeout=30)
        assert (runtime / "gnupg" / "S.gpg-agent").exists(), term.screen()
        term.run("cd proj")
        text = term.run("gpg-connect-agent --no-autostart 'GETINFO version' /bye; echo rc=$?", timeout=30)
        print(text)
        assert "denied connect" not in text
    finally:
        subprocess.run(user.prefix() + ["gpgconf", "--kill", "gpg-agent"], env=user.env({"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}), check=False)
        if created:
            shutil.rmtree(runtime, ignore_errors=True)
