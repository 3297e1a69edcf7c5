"""Issue 17.4: path names from a detached mount or another mount namespace.

In a new user and mount namespace, open_tree(OPEN_TREE_CLONE) of a
directory gives an fd whose /proc/self/fd link reads relative to that
mount's root: victim/tmp/x read as /tmp/x (writable) and was written; a
bind mount in a private namespace named victim/x as a path inside the
project. Now the mount API is refused to confined processes, and the
supervisor believes the kernel's name for an object only when it leads to
that object from its own root. Both hot paths; each attack has a control
that writes without peninsula.
"""

from __future__ import annotations

import ctypes
import os
import subprocess

from .conftest import SYSTEM_PYTHON, make_box, parse

import pytest

OPEN_TREE_CLONE, AT_RECURSIVE = 1, 0x8000

NAMESPACE_ATTACK = r'''
import ctypes
NR.update(unshare=272, open_tree=428, mount=165)
CLONE_NEWUSER, CLONE_NEWNS, MS_BIND = 0x10000000, 0x20000, 4096
victim, proj = sys.argv[1], sys.argv[2]
attempt("unshare", sc, "unshare", CLONE_NEWUSER | CLONE_NEWNS)
def through_detached():
    tree = sc("open_tree", AT_FDCWD, victim, 1 | 0x8000)
    os.close(os.open("tmp/x", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=tree))
attempt("out_detached_write", through_detached)
def through_bind():
    sc("mount", victim, proj + "/b", 0, MS_BIND, 0)
    os.close(os.open(proj + "/b/y", os.O_WRONLY | os.O_CREAT, 0o644))
attempt("out_bind_write", through_bind)
done()
'''


@pytest.fixture
def user_box(user, hot_path):
    return make_box(user, hot_path)


def _victim(box, name):
    victim = box.dir(box.base / name)
    box.dir(victim / "tmp")
    box.dir(box.project / "b")
    return victim


def test_mount_namespace_routes_are_closed(user_box):
    box = user_box
    control_victim, victim = _victim(box, "control-victim"), _victim(box, "victim")
    control = box.probe(NAMESPACE_ATTACK, control_victim, box.project, confined=False)
    assert control["unshare"] == control["out_detached_write"] == control["out_bind_write"] == "OK", control
    assert (control_victim / "tmp" / "x").exists() and (control_victim / "y").exists()
    confined = box.probe(NAMESPACE_ATTACK, victim, box.project)
    assert confined["unshare"] == "OK"  # a user namespace is no harm by itself
    assert confined["out_detached_write"] == confined["out_bind_write"] == "EPERM", confined
    assert os.listdir(victim / "tmp") == [] and not (victim / "y").exists()


INHERITED = r'''
tree = int(sys.argv[1])
attempt("out_create", lambda: os.close(os.open("tmp/x", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=tree)))
attempt("out_append", lambda: os.close(os.open("tmp/old", os.O_WRONLY | os.O_APPEND, dir_fd=tree)))
attempt("out_mkdir", lambda: os.mkdir("tmp/d", dir_fd=tree))
attempt("out_chmod", lambda: os.chmod("tmp/old", 0o600, dir_fd=tree))
done()
'''


def _open_tree(path) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(428, -100, os.fsencode(path), OPEN_TREE_CLONE | AT_RECURSIVE)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    return fd


def test_an_inherited_detached_mount_is_not_misnamed(root_box):
    """The supervisor's own check, reached with an fd on a detached mount
    made outside (the mount API itself is refused inside)."""
    box = root_box
    results = {}
    for mode in ("control", "confined"):
        victim = box.dir(box.base / f"{mode}-victim")
        box.dir(victim / "tmp")
        box.file(victim / "tmp" / "old", "old\n")
        tree = _open_tree(victim)
        script = box.script(INHERITED)
        argv = [SYSTEM_PYTHON, script, str(tree)]
        if mode == "confined":
            argv = [SYSTEM_PYTHON, "-m", "peninsula", "run", "--project", str(box.project), "--log", str(box.log),
                    "--", *argv]
        try:
            proc = subprocess.run(argv, cwd=box.project, env=box.who.env(box.env), capture_output=True,
                                  pass_fds=(tree,), timeout=60)
        finally:
            os.close(tree)
        results[mode] = parse(proc)
        results[mode]["x_listing"] = sorted(os.listdir(victim / "tmp"))
        results[mode]["x_mode"] = os.stat(victim / "tmp" / "old").st_mode & 0o777
    control, confined = results["control"], results["confined"]
    for key in ("out_create", "out_append", "out_mkdir", "out_chmod"):
        assert control[key] == "OK", (key, control)
        assert confined[key] in ("EACCES", "EPERM"), (key, confined)
    assert control["x_listing"] == ["d", "old", "x"] and confined["x_listing"] == ["old"]
    assert confined["x_mode"] == 0o644
    notices = confined["_proc"].stderr.decode()
    assert "not reachable from the supervisor's root" in notices, notices
    assert "/tmp/" not in notices, notices  # the misleading name is never shown
