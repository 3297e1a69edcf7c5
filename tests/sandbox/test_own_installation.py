"""peninsula's own installation is protected wherever it lives: its code,
the dependencies it imports, its cached seccomp program, the venv it runs
from, all run unconfined at the next start. (An adversarial review forged
the cached program and appended to the policy engine from `run --project $HOME`
with peninsula installed in a venv in the home.)"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .helpers import PY

ATTACKS = {
    "package code": "open({pkg!r} + '/policy/engine.py', 'a').write('# planted')",
    "cached filter program": "open({pkg!r} + '/supervisor/__pycache__/filter-planted.bpf', 'wb').write(b'\\x06\\0\\0\\0\\0\\0\\xff\\x7f')",
    "a dependency": "open({deps!r} + '/tomlkit/__init__.py', 'a').write('# planted')",
    "a .pth file beside it": "open({deps!r} + '/planted.pth', 'w').write('import os')",
    "moving the installation away": "import os; os.rename({deps!r}, {deps!r} + '.moved')",
}


@pytest.fixture
def installed(who, runtime):
    """A copy of peninsula and its dependencies owned by the user, inside
    the writable root: as a venv in the home is under `run --project $HOME`."""
    deps = who.base / "inst"
    shutil.copytree(runtime, deps)
    (deps / "peninsula" / "supervisor" / "__pycache__").mkdir(exist_ok=True)
    subprocess.run(["chown", "-R", f"{who.uid}:{who.gid}", str(deps)], check=True)
    return deps


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_own_installation_cannot_be_changed_from_inside(who, installed, attack):
    code = ATTACKS[attack].format(pkg=str(installed / "peninsula"), deps=str(installed))
    env = {"PYTHONPATH": str(installed)}
    warm = who.peninsula("run", "--project", who.base, "--", "true", env=env)  # writes the filter cache
    assert warm.returncode == 0, warm
    before = {p: p.stat().st_mtime_ns for p in installed.rglob("*")}
    refused = who.peninsula("run", "--project", who.base, "--", PY, "-c", code, env=env)
    assert refused.returncode != 0, refused
    assert b"protected" in refused.stderr, refused.stderr
    after = {p: p.stat().st_mtime_ns for p in installed.rglob("*")} if installed.exists() else {}
    assert after == before, "the installation changed"
    # Positive control: the same code, unconfined, changes it.
    done = who.run([PY, "-c", code], env=env)
    assert done.returncode == 0, done
    moved = installed.with_name("inst.moved")
    changed = not installed.exists() or {p: p.stat().st_mtime_ns for p in installed.rglob("*")} != before
    assert changed or moved.exists()
    if moved.exists():
        os.rename(moved, installed)
