"""The cached filter program is keyed on both files that decide it: the
syscall table (which rules) and kernel/seccomp.py (how they become BPF).
A change to either must miss the cache, or a stale program would load."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "peninsula"


@pytest.fixture
def tree(tmp_path):
    for rel in ("supervisor/filtercache.py", "supervisor/table.py", "kernel/seccomp.py"):
        (tmp_path / "peninsula" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PACKAGE / rel, tmp_path / "peninsula" / rel)
    spec = importlib.util.spec_from_file_location("filtercache_copy", tmp_path / "peninsula" / "supervisor" / "filtercache.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tmp_path / "peninsula", module


@pytest.mark.parametrize("rel", ["supervisor/table.py", "kernel/seccomp.py"])
def test_key_changes_with_each_source(tree, rel):
    root, cache = tree
    keys = {(chdir, fast): cache._key(chdir, fast) for chdir in (False, True) for fast in (False, True)}
    assert None not in keys.values() and len(set(keys.values())) == 4  # this machine's libseccomp is known
    info = os.stat(root / rel)
    os.utime(root / rel, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    assert all(cache._key(chdir, fast) != key for (chdir, fast), key in keys.items())


@pytest.mark.parametrize("rel", ["supervisor/table.py", "kernel/seccomp.py"])
def test_no_cache_without_a_source(tree, rel):
    root, cache = tree
    os.unlink(root / rel)
    assert cache._key(False, False) is None
