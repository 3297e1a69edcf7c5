"""Issue 19.5 (and the mount half of 17.4): host-wide metadata from inside
a root run.

Everything beneath /dev/pts was allowed, the directory itself included,
so a root run could `chmod 1777 /dev/pts` or write any user's terminal;
and mount_setattr was neither trapped nor seen by Landlock, so a root run
made a host tmpfs read-only. Now the mount API is refused to confined
processes, the directory /dev/pts is the host's, and a confined process
writes only its own terminals (its controlling one, or one it holds).
Root, both hot paths; each refusal has a control run without peninsula.
"""

from __future__ import annotations

import os
import subprocess

import pytest

MOUNT_PROBE = r'''
import ctypes
MOUNT_ATTR_RDONLY = 1
NR.update(mount=165, umount2=166, open_tree=428, move_mount=429, fsopen=430, fsmount=432, fspick=433,
          mount_setattr=442)
where = sys.argv[1]
attr = ctypes.create_string_buffer(struct.pack("=QQQQ", MOUNT_ATTR_RDONLY, 0, 0, 0), 32)
attempt("out_mount_setattr", sc, "mount_setattr", AT_FDCWD, where, 0, attr, 32)
if RESULTS["out_mount_setattr"] == "OK":
    sc("mount_setattr", AT_FDCWD, where, 0, ctypes.create_string_buffer(struct.pack("=QQQQ", 0, MOUNT_ATTR_RDONLY, 0, 0), 32), 32)
attempt("out_fsopen", lambda: os.close(sc("fsopen", "tmpfs", 1)))
attempt("out_fspick", lambda: os.close(sc("fspick", AT_FDCWD, where, 1)))
attempt("out_open_tree_clone", lambda: os.close(sc("open_tree", AT_FDCWD, where, 1 | 0o2000000)))
attempt("open_tree_plain", lambda: os.close(sc("open_tree", AT_FDCWD, where, 0o2000000)))
attempt("out_mount_remount", sc, "mount", "none", where, "tmpfs", 32, "size=2m")  # MS_REMOUNT
attempt("out_umount", sc, "umount2", where + "/inner", 0)
done(x_ro=bool(os.statvfs(where).f_flag & os.ST_RDONLY))
'''


def _tmpfs(path):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], check=True)
    (path / "inner").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path / "inner")], check=True)


@pytest.fixture
def mounts(root_box):
    made = []
    for name in ("confined-mnt", "control-mnt"):
        path = root_box.base / name
        _tmpfs(path)
        made.append(path)
    yield made
    for path in made:
        subprocess.run(["umount", "-R", str(path)], check=False)


def test_mount_api_is_refused_to_confined_processes(root_box, mounts):
    confined_mnt, control_mnt = mounts
    control = root_box.probe(MOUNT_PROBE, control_mnt, confined=False)
    confined = root_box.probe(MOUNT_PROBE, confined_mnt)
    for key in control:
        if key.startswith("out_"):
            assert control[key] == "OK", (key, control)
            assert confined[key] == "EPERM", (key, confined)
    assert confined["open_tree_plain"] == control["open_tree_plain"] == "OK"
    assert confined["x_ro"] is False
    assert os.path.ismount(confined_mnt / "inner")


def test_mount_api_in_a_namespace_peninsula_made(root_box):
    """--unshare-* namespaces are made before the filter: they still work,
    and the mount API inside them is refused all the same."""
    script = "hostname; unshare -m true; echo rc=$?"
    free = root_box.who.run(["sh", "-c", script])
    assert "rc=0" in free.stdout.decode(), free
    proc = root_box.run("sh", "-c", script, options=["--unshare-uts", "--hostname", "inside"])
    out = proc.stdout.decode()
    assert out.startswith("inside\n") and "rc=0" not in out, (out, proc.stderr)


PTS_PROBE = r'''
theirs = sys.argv[1]
attempt("out_chmod_pts_dir", os.chmod, "/dev/pts", stat.S_IMODE(os.stat("/dev/pts").st_mode))
attempt("out_write_their_pty", lambda: os.close(os.open(theirs, os.O_WRONLY | os.O_NOCTTY)))
attempt("out_chmod_their_pty", os.chmod, theirs, stat.S_IMODE(os.stat(theirs).st_mode))
# a read-only open is never trapped: holding one proves nothing
def read_then_write():
    held = os.open(theirs, os.O_RDONLY | os.O_NOCTTY)
    try:
        os.close(os.open(theirs, os.O_WRONLY | os.O_NOCTTY))
    finally:
        os.close(held)
attempt("out_write_their_pty_held_for_reading", read_then_write)
# a pty of its own: openpty opens /dev/ptmx, then the new /dev/pts/N by name
def own_pty():
    master, slave = os.openpty()
    name = os.ttyname(slave)
    fd = os.open(name, os.O_WRONLY | os.O_NOCTTY)
    os.write(fd, b"own")
    os.fchmod(fd, 0o620)
    os.chmod(name, 0o600)
    for f in (fd, master, slave):
        os.close(f)
attempt("own_pty", own_pty)
done()
'''


def test_only_its_own_terminals(root_box):
    master, slave = os.openpty()
    try:
        theirs = os.ttyname(slave)
        before = os.stat("/dev/pts")
        control = root_box.probe(PTS_PROBE, theirs, confined=False)
        confined = root_box.probe(PTS_PROBE, theirs)
        for key in control:
            if key.startswith("out_"):
                assert control[key] == "OK", (key, control)
                assert confined[key] in ("EPERM", "EACCES"), (key, confined)
        assert confined["out_write_their_pty"] == "EACCES" and confined["out_chmod_pts_dir"] == "EPERM"
        assert confined["own_pty"] == control["own_pty"] == "OK", confined
        touched = root_box.run("touch", "/dev/pts")
        assert touched.returncode != 0 and os.stat("/dev/pts").st_mtime_ns == before.st_mtime_ns
    finally:
        os.close(master)
        os.close(slave)


STEAL_PROBE = r'''
import fcntl, termios
theirs = sys.argv[1]
pid = os.fork()
if pid == 0:
    os.setsid()
    fd = os.open(theirs, os.O_RDONLY | os.O_NOCTTY)  # a read-only open is never trapped
    try:
        fcntl.ioctl(fd, termios.TIOCSCTTY, 1)
        got = "OK"
    except OSError as e:
        got = errno.errorcode[e.errno]
    try:
        os.close(os.open("/dev/tty", os.O_WRONLY))
        tty = "OK"
    except OSError as e:
        tty = errno.errorcode[e.errno]
    print("RESULT " + json.dumps({"out_steal": got, "out_write_through_dev_tty": tty}), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
'''


def test_no_taking_of_another_terminal(root_box):
    """TIOCSCTTY with a non-zero argument takes a terminal from its session
    (root): then /dev/tty would write it. The plain form stays."""
    master, slave = os.openpty()
    try:
        theirs = os.ttyname(slave)
        control = root_box.probe(STEAL_PROBE, theirs, confined=False)
        confined = root_box.probe(STEAL_PROBE, theirs)
        assert control["out_steal"] == control["out_write_through_dev_tty"] == "OK", control
        assert confined["out_steal"] == "EPERM", confined
        assert confined["out_write_through_dev_tty"] == "ENXIO", confined  # no controlling terminal
    finally:
        os.close(master)
        os.close(slave)
