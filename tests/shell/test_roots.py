"""roots.HeldRoots on a real file system: roots known by device and inode."""

import os

from peninsula.shell.roots import O_PATH_DIR, HeldRoots


def _key(path):
    info = os.stat(path)
    return info.st_dev, info.st_ino


def test_a_held_root_is_found_from_below_after_it_moved(tmp_path):
    root = tmp_path / "proj"
    (root / "a" / "b").mkdir(parents=True)
    held = HeldRoots()
    held.hold(str(root))
    os.rename(root, tmp_path / "moved")
    fd = os.open(tmp_path / "moved" / "a" / "b", O_PATH_DIR)
    try:
        key = held.containing(fd)
    finally:
        os.close(fd)
    assert key == _key(tmp_path / "moved")
    assert held.path_of(key) == str(tmp_path / "moved")


def test_a_directory_outside_every_root_has_none(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "other").mkdir()
    held = HeldRoots()
    held.hold(str(tmp_path / "proj"))
    fd = os.open(tmp_path / "other", O_PATH_DIR)
    try:
        assert held.containing(fd) is None
    finally:
        os.close(fd)


def test_guarded_holds_roots_and_their_ancestors_only(tmp_path):
    root = tmp_path / "w" / "proj"
    (root / "inner").mkdir(parents=True)
    (tmp_path / "w" / "sibling").mkdir()
    held = HeldRoots()
    held.hold(str(root))
    guarded = held.guarded()
    assert _key(root) in guarded
    assert _key(tmp_path / "w") in guarded and _key(tmp_path) in guarded and _key("/") in guarded
    assert _key(root / "inner") not in guarded
    assert _key(tmp_path / "w" / "sibling") not in guarded


def test_a_removed_root_has_no_path(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    held = HeldRoots()
    held.hold(str(root))
    key = _key(root)
    root.rmdir()
    assert held.path_of(key) is None
