"""Issue 17 class 3: a project is known by its root directory, not its path.

From inside, a project root (or a directory above one) cannot be moved,
replaced or exchanged; the shell's directory is judged by the directory
itself, so moving it (or the project) never makes the shell look as if it
had left. Each attack has a positive control: the same steps from outside.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path

import pytest

from .conftest import SHELLS, supervised

EXCHANGE = ("python3 -c 'import ctypes, os, sys; l = ctypes.CDLL(None, use_errno=True); "
            "rc = l.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2); "
            "print(\"exchange:\", \"ok\" if rc == 0 else os.strerror(ctypes.get_errno()))'")


@pytest.fixture
def tmp_project(user, home):
    """A direnv-allowed project below a directory in /tmp, which a confined
    process may write: so the directory above the root is in reach."""
    base = user.mkdir(Path("/tmp") / f"pt-judge-{uuid.uuid4().hex[:8]}")
    project = user.mkdir(base / "proj")
    user.write(project / ".envrc", "export PROJ_LOADED=1\n")
    result = user.run(["direnv", "allow", str(project)], cwd=project, env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    yield project
    shutil.rmtree(str(base) + "-moved", ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)


def test_the_project_root_cannot_be_moved_from_inside(term_factory, home):
    moved = Path("/tmp") / f"pt-judge-moved-{uuid.uuid4().hex[:8]}"
    term = term_factory("bash")
    supervised(term)
    # Positive control: from outside, the project moves (and comes back).
    text = term.run(f"mv proj {moved} && mv {moved} proj && echo moved-back")
    assert "moved-back" in text
    term.run("cd proj")
    text = term.run(f"mv ~/proj {moved}; echo rc=$?")
    assert "rc=1" in text and "Permission denied" in text
    assert (home / "proj" / ".envrc").exists()
    assert not moved.exists()
    term.run("mkdir /tmp/pt-judge-x-$$")
    text = term.run(f"{EXCHANGE} ~/proj /tmp/pt-judge-x-$$; rmdir /tmp/pt-judge-x-$$")
    assert "exchange: Permission denied" in text
    assert (home / "proj" / ".envrc").exists()
    # Directories inside the project still move.
    text = term.run("mkdir -p a/b && mv a c && mv c/b c/d && rmdir c/d c && echo inner-ok")
    assert "inner-ok" in text


def test_a_directory_above_the_root_cannot_be_moved_from_inside(term_factory, home, tmp_project):
    base = tmp_project.parent
    term = term_factory("bash")
    supervised(term)
    text = term.run(f"mv {base} {base}-moved && mv {base}-moved {base} && echo moved-back")
    assert "moved-back" in text  # positive control, from outside
    term.run(f"cd {tmp_project}")
    term.prompt()
    assert "[peninsula: proj]" in term.screen()
    text = term.run(f"mv {base} {base}-moved; echo rc=$?")
    assert "rc=1" in text and "Permission denied" in text
    assert tmp_project.exists() and not Path(f"{base}-moved").exists()


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_shells_directory_cannot_be_moved_away_from_inside(term_factory, home, user):
    """The chained race's first step: a job moves the directory the shell is
    in out of the project (to /tmp, which it may write)."""
    sub = user.mkdir(home / "proj" / "sub")
    moved = Path("/tmp") / f"pt-judge-sub-{uuid.uuid4().hex[:8]}"
    term = term_factory("bash")
    supervised(term)
    term.run(f"cd {sub}")
    text = term.run(f"sh -c 'mv {sub} {moved}; echo mv-rc=$?'")
    assert "mv-rc=1" in text and "Permission denied" in text
    assert sub.exists() and not moved.exists()
    text = term.run(f"sh -c 'rmdir {sub}; echo rmdir-rc=$?'")  # it is empty
    assert "rmdir-rc=1" in text and sub.exists()
    # Positive control: once the shell is elsewhere, the same job may.
    term.run("cd ..")
    text = term.run(f"sh -c 'mv {sub} {moved} && mv {moved} {sub} && rmdir {sub} && echo moved-back'")
    assert "moved-back" in text and not sub.exists()


@pytest.mark.parametrize("shell", SHELLS)
def test_a_directory_moved_under_the_shell_lifts_nothing(term_factory, home, user, shell):
    """The shell's directory is moved out of the project under it (here by
    an unconfined job, which may), and back later: the prompt in between is
    in the same directory, so it lifts nothing, and the next command (an
    append to ~/.bashrc) is still confined."""
    sub = user.mkdir(home / "proj" / "sub")
    moved = Path("/tmp") / f"pt-judge-sub-{uuid.uuid4().hex[:8]}"
    bashrc = home / ".bashrc"
    before = bashrc.read_text()
    term = term_factory(shell)
    supervised(term)
    term.run(f"sh -c 'while [ ! -e {sub}/go ]; do sleep 0.05; done; mv {sub} {moved}; sleep 1.5; mv {moved} {sub}' &")
    term.run(f"cd {sub}")
    term.run("touch go")
    _wait_for(moved.exists)
    term.prompt()  # a prompt while the directory is in /tmp
    # The shell's directory as the kernel names it (fish's pwd -P names $PWD).
    text = term.run("echo pwned >> ~/.bashrc; readlink /proc/self/cwd")
    assert re.search(rf"^{re.escape(str(moved))}\s*$", text, re.M)  # it did move, and the shell is in it
    assert "denied open of " + str(bashrc) in text
    assert "stays confined until you change directory" in text
    _wait_for(sub.exists)  # moved back
    term.prompt()
    term.run("echo pwned >> ~/.bashrc")
    assert bashrc.read_text() == before
    # Positive control: having changed directory out of the project, it lifts.
    term.run("cd ~")
    term.run("echo '# ok' >> ~/.bashrc")
    assert bashrc.read_text() == before + "# ok\n"


def test_a_project_renamed_from_outside_is_still_the_project(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.run("cd ..")
    term.prompt()
    term.run("mv proj proj2")  # unconfined: allowed
    term.run("cd proj2")
    term.prompt()
    text = term.run("echo out > ../out/renamed; echo in > inside")
    assert "denied open of " + str(home / "out" / "renamed") in text
    assert not (home / "out" / "renamed").exists()
    assert (home / "proj2" / "inside").read_text() == "in\n"
