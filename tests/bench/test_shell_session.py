"""The bench's shell-session mode measures a supervised shell, or nothing.

bench/shell_session.py drives a real `bash -i` on a pty through the hook; a
bench of an unsupervised shell would report figures for no sandbox at all,
so these check that the shell it times is confined to the project and that
the same writes work from a plain bash (the control)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from shell_session import ShellSession  # noqa: E402

# Not under /tmp or /var/tmp: those are writable to every confined process.
ROOT = Path("/var/lib/peninsula-tests")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the bench runs as root, in /var/lib")


@pytest.fixture
def place():
    base = ROOT / f"bench-shell-{uuid.uuid4().hex[:8]}"
    (base / "proj").mkdir(parents=True)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_the_timed_shell_is_confined_to_the_project(place):
    project, outside = place / "proj", place / "outside"
    outside.mkdir()
    # Control: the same write from a plain bash works.
    subprocess.run(["bash", "-c", f"echo x > {outside}/control"], check=True)
    assert (outside / "control").exists()
    session = ShellSession(project, place / "home", dict(os.environ))
    try:
        elapsed, out = session.run(["sh", "-c", "echo inside > written; cat written"], str(project), {},
                                   project / "stdout")
        assert out == "inside\n" and 0 < elapsed < 10
        with pytest.raises(RuntimeError, match="exited"):
            session.run(["sh", "-c", f"echo x > {outside}/escaped"], str(project), {}, project / "stdout2")
        elapsed, out = session.run(["sh", "-c", 'echo "$BENCH_VAR"'], str(project), {"BENCH_VAR": "a b'c"},
                                   project / "stdout3")
        assert out == "a b'c\n"
    finally:
        session.close()
    assert not (outside / "escaped").exists()
    assert (project / "written").read_text() == "inside\n"


def test_an_unsupervised_shell_stops_the_bench(place, monkeypatch):
    import shell_session

    # `/bin/true hook bash` prints no hook: the shell starts, unsupervised.
    monkeypatch.setattr(shell_session, "PENINSULA", Path("/bin/true"))
    with pytest.raises(shell_session.ShellError, match="not supervised"):
        ShellSession(place / "proj", place / "home", dict(os.environ))
    assert (place / "home" / "outside-probe").exists()  # the probe's write went through: that is what was caught
