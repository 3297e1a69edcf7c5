"""The filter program root's run cached serves every user of the
installation: a plain user's start does not rebuild it (importing pyseccomp,
~20 ms). The package directory is root's, so the plain user cannot write
the cache; it was once created 0700 when Python had not made __pycache__
(PYTHONDONTWRITEBYTECODE), and then every plain user's start rebuilt it.
The control: with the cached program removed, the same start does rebuild.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from conftest import SCRATCH_ROOT, SYSTEM_PYTHON


def _rebuilt(user, runtime: Path) -> bool:
    """Whether a plain user's `run -- true` imported pyseccomp."""
    started = user.run([SYSTEM_PYTHON, "-X", "importtime", "-m", "peninsula", "run", "--", "true"],
                       env={"PYTHONPATH": str(runtime)})
    assert started.returncode == 0, started.stderr
    return b"| pyseccomp\n" in started.stderr


def test_root_cached_program_serves_a_plain_user(root, user, runtime):
    fresh = Path(tempfile.mkdtemp(prefix="rt-", dir=SCRATCH_ROOT))
    try:
        os.chmod(fresh, 0o755)
        shutil.copytree(runtime, fresh, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        cache = fresh / "peninsula" / "supervisor" / "__pycache__"
        assert not cache.exists()
        done = root.run([SYSTEM_PYTHON, "-m", "peninsula", "run", "--", "true"], env={"PYTHONPATH": str(fresh)})
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE(cache.stat().st_mode) == 0o755
        programs = list(cache.glob("filter-*.bpf"))
        assert len(programs) == 1 and programs[0].stat().st_uid == 0
        assert not _rebuilt(user, fresh)
        programs[0].unlink()
        assert _rebuilt(user, fresh)  # the control: no cached program, so it is built
        assert not list(cache.glob("filter-*.bpf"))  # and the plain user could not write one
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
