"""A hard link of a file from outside into the project is made as a copy
(handlers/linkcopy.py): `git clone` of a local path, `cp -al`, `ln`.

Each test is a twin: the same probe runs unconfined (the kernel links) and
confined (peninsula copies). The kernel's own answers come first and are
the same both ways; the copy has the source's contents, permission bits and
times, and writing or chmodding it leaves the outside file as it was,
where the same route unconfined changes it (the positive control)."""

import json
import os
import stat

from .conftest import run_twin

NOBODY = 65534
BIG = os.urandom(5 << 20)  # above linkcopy.INLINE_MAX
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]

COPY = r'''
P, O = sys.argv[1], sys.argv[2]
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
od = os.open(O, os.O_RDONLY | os.O_DIRECTORY)
FOLLOW = 0x400
def append(path):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"changed\n")
    os.close(fd)
attempt("link", sc, "link", O + "/obj", P + "/c1")
attempt("linkat", sc, "linkat", od, "obj", pd, "c2", 0)
attempt("linkat_follow", sc, "linkat", pd, "sym_out", pd, "c3", FOLLOW)
fo = os.open(O + "/obj", os.O_RDONLY)
attempt("linkat_procfd", sc, "linkat", AT_FDCWD, "/proc/self/fd/%d" % fo, pd, "c4", FOLLOW)
attempt("write_through_new_name", append, P + "/c1")
attempt("chmod_through_new_name", sc, "chmod", P + "/c2", 0o600)
attempt("utimes_through_new_name", sc, "utimensat", pd, "c3", ctypes.c_void_p(0), 0)
attempt("link_inside", sc, "link", P + "/a", P + "/a2")
attempt("link_large", sc, "link", O + "/big", P + "/big")  # copied in a thread of its own
done()
'''


def copy_setup(box, project, outside):
    box.file(outside / "obj", "data\n", mode=0o640)
    os.utime(outside / "obj", ns=(1_000_000_000_123, 2_000_000_000_456))
    box.file(project / "a", "a")
    box.file(outside / "big", BIG, mode=0o755)
    os.symlink(outside / "obj", project / "sym_out")
    box.own(project / "sym_out")


def test_link_from_outside_is_a_copy(box):
    conf, ctl, pair, control = run_twin(box, COPY, copy_setup)
    assert conf["link"] == "OK" and conf["write_through_new_name"] == "OK", conf
    o, p = pair.outside / "obj", pair.project
    source = os.stat(o)
    assert o.read_bytes() == b"data\n" and stat.S_IMODE(source.st_mode) == 0o640 and source.st_nlink == 1
    assert source.st_mtime_ns == 2_000_000_000_456
    assert (p / "c1").read_bytes() == b"data\nchanged\n"
    assert stat.S_IMODE(os.stat(p / "c2").st_mode) == 0o600
    for name in ("c1", "c2", "c3", "c4"):
        copy = os.stat(p / name)
        assert copy.st_ino != source.st_ino and copy.st_nlink == 1, name
        assert (copy.st_uid, copy.st_gid) == (box.who.uid, box.who.gid), name
    copy = os.stat(p / "c4")
    assert (p / "c4").read_bytes() == b"data\n" and stat.S_IMODE(copy.st_mode) == 0o640
    assert copy.st_mtime_ns == 2_000_000_000_456
    big = os.stat(p / "big")
    assert (p / "big").read_bytes() == BIG and stat.S_IMODE(big.st_mode) == 0o755 and big.st_nlink == 1
    assert os.stat(pair.outside / "big").st_nlink == 1
    # A link between two names inside stays a link.
    assert os.stat(p / "a2").st_ino == os.stat(p / "a").st_ino and os.stat(p / "a").st_nlink == 2
    # Positive control: unconfined, the same calls link, and the writes
    # through the new names change the outside file.
    theirs = os.stat(control.outside / "obj")
    assert (control.outside / "obj").read_bytes() == b"data\nchanged\n"
    assert stat.S_IMODE(theirs.st_mode) == 0o600 and theirs.st_nlink == 5
    # Not a refusal: nothing logged.
    assert not box.log.exists() or box.log.read_text() == "", box.log.read_text()


FIRST = r'''
P, O = sys.argv[1], sys.argv[2]
shm = "/dev/shm/.peninsula-copylink-%d" % os.getpid()
attempt("new_name_exists", sc, "link", O + "/obj", P + "/exists")
attempt("source_missing", sc, "link", O + "/missing", P + "/m")
attempt("new_parent_missing", sc, "link", O + "/obj", P + "/nodir/x")
attempt("new_name_too_long", sc, "link", O + "/obj", P + "/" + "n" * 256)
attempt("source_directory", sc, "link", O + "/dir", P + "/d")
attempt("other_filesystem", sc, "link", O + "/obj", shm)
attempt("protected_hardlinks", sc, "link", O + "/roots", P + "/r")
attempt("out_fifo", sc, "link", O + "/fifo", P + "/f")
attempt("out_symlink_itself", sc, "linkat", AT_FDCWD, O + "/sym", AT_FDCWD, P + "/s", 0)
attempt("out_setuid", sc, "link", O + "/suid", P + "/su")
# The owner may link a file it may not read; only root may read it.
attempt("noread_root" if os.getuid() == 0 else "out_noread", sc, "link", O + "/noread", P + "/nr")
for leftover in (shm,):
    if os.path.exists(leftover):
        os.unlink(leftover)
done()
'''


def first_setup(box, project, outside):
    box.file(outside / "obj", "data\n")
    box.file(project / "exists", "mine\n")
    box.dir(outside / "dir")
    (outside / "roots").write_text("root's\n")  # root's, 0600: protected hard links
    os.chmod(outside / "roots", 0o600)
    os.mkfifo(outside / "fifo", 0o644)
    box.own(outside / "fifo")
    os.symlink("obj", outside / "sym")
    box.own(outside / "sym")
    box.file(outside / "suid", "#!/bin/sh\n")
    os.chmod(outside / "suid", 0o4755)  # after the chown, which clears it
    box.file(outside / "noread", "private\n", mode=0o000)


def test_kernel_answers_come_first(box):
    conf, ctl, pair, _ = run_twin(box, FIRST, first_setup, denied_errno="EPERM")
    want = {"new_name_exists": "EEXIST", "source_missing": "ENOENT", "new_parent_missing": "ENOENT",
            "new_name_too_long": "ENAMETOOLONG", "source_directory": "EPERM", "other_filesystem": "EXDEV",
            "protected_hardlinks": "OK" if box.who.is_root else "EPERM"}
    assert {key: conf[key] for key in want} == want
    p = pair.project
    assert (p / "exists").read_text() == "mine\n"
    if box.who.is_root:
        assert (p / "nr").read_text() == "private\n" and (p / "r").read_text() == "root's\n"
        assert os.stat(p / "r").st_ino != os.stat(pair.outside / "roots").st_ino
    for name in ("f", "s", "su") + (() if box.who.is_root else ("nr", "r")):
        assert not os.path.lexists(p / name), name
    # Only the genuine refusals are logged: the kernel would have linked.
    logged = sorted(os.path.basename(json.loads(line)["path"]) for line in box.log.read_text().splitlines())
    assert logged == sorted(["fifo", "sym", "su"] + ([] if box.who.is_root else ["noread"])), logged


RACE = r'''
import threading, time
P, O = sys.argv[1], sys.argv[2]
stop = False
def flip():
    n = 0
    while not stop:
        n += 1
        tmp = P + "/open/.t%d" % n
        os.symlink(O + ("/theirs" if n % 2 else "/ok"), tmp)
        os.rename(tmp, P + "/open/flip")
thread = threading.Thread(target=flip)
thread.start()
made, refused, end, i = [], 0, time.monotonic() + 1.5, 0
while time.monotonic() < end and i < 3000:
    i += 1
    try:
        sc("linkat", AT_FDCWD, P + "/open/flip", AT_FDCWD, P + "/open/c%d" % i, 0x400)
        made.append(i)
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOENT):
            raise
        refused += 1
stop = True
thread.join()
attempt("out_direct", sc, "link", O + "/theirs", P + "/open/direct")
done(x_made=made, x_refused=refused)
'''


def race_setup(box, project, outside):
    os.chmod(project, 0o755)
    os.chmod(outside, 0o755)
    (project / "open").mkdir()
    os.chmod(project / "open", 0o777)
    for name, text, mode in (("ok", "ok\n", 0o644), ("theirs", "SECRET\n", 0o000)):
        (outside / name).write_text(text)
        os.chmod(outside / name, mode)
        os.chown(outside / name, NOBODY, NOBODY)  # nobody's own: the kernel links it for nobody


def test_copy_reads_with_the_targets_rights(root_box):
    """A root supervisor serving a process that dropped to nobody: a file
    nobody owns but may not read is linked by the kernel, and never copied
    (the copy is read with nobody's rights), even while a thread swaps the
    name between it and a readable file."""
    conf, ctl, pair, control = run_twin(root_box, RACE, race_setup, denied_errno="EPERM", prefix=SETPRIV)
    opened = pair.project / "open"
    assert not (opened / "direct").exists()
    assert conf["x_made"] and conf["x_refused"], conf
    assert {(opened / f"c{i}").read_text() for i in conf["x_made"]} == {"ok\n"}
    # Positive control: unconfined, the race links the unreadable file too.
    contents = {(control.project / "open" / f"c{i}").read_text() for i in ctl["x_made"]}
    assert contents == {"ok\n", "SECRET\n"}, contents
