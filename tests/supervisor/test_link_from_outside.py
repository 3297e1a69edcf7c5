"""A hard link of a regular file from outside into the project fails with
EXDEV, as between two file systems, logged but not noticed
(names.CROSS_BOUNDARY): tools that link where they can (git clone of a
local path, pnpm, uv, ccache) copy instead.

Each test is a twin: the same probe runs unconfined (the kernel links) and
confined. The kernel's own answers come first and are the same both ways."""

import json
import os

from .conftest import run_twin

FROM_OUTSIDE = r'''
P, O = sys.argv[1], sys.argv[2]
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
od = os.open(O, os.O_RDONLY | os.O_DIRECTORY)
FOLLOW = 0x400
attempt("out_link", sc, "link", O + "/obj", P + "/c1")
attempt("out_linkat", sc, "linkat", od, "obj", pd, "c2", 0)
attempt("out_linkat_follow", sc, "linkat", pd, "sym_out", pd, "c3", FOLLOW)
fo = os.open(O + "/obj", os.O_RDONLY)
attempt("out_linkat_procfd", sc, "linkat", AT_FDCWD, "/proc/self/fd/%d" % fo, pd, "c4", FOLLOW)
attempt("link_inside", sc, "link", P + "/a", P + "/a2")
done()
'''


def from_outside_setup(box, project, outside):
    box.file(outside / "obj", "data\n")
    box.file(project / "a", "a")
    os.symlink(outside / "obj", project / "sym_out")
    box.own(project / "sym_out")


def test_link_from_outside_is_exdev(box):
    conf, ctl, pair, control = run_twin(box, FROM_OUTSIDE, from_outside_setup, denied_errno="EXDEV")
    p = pair.project
    assert not any(os.path.lexists(p / name) for name in ("c1", "c2", "c3", "c4"))
    assert os.stat(pair.outside / "obj").st_nlink == 1
    # A link between two names inside stays a link.
    assert os.stat(p / "a2").st_ino == os.stat(p / "a").st_ino and os.stat(p / "a").st_nlink == 2
    # Positive control: unconfined, the same calls make four more names.
    assert os.stat(control.outside / "obj").st_nlink == 5
    # The kernel would have linked them: logged (the source's path), but
    # not shown on the terminal, since these tools copy on EXDEV by design.
    entries = [json.loads(line) for line in box.log.read_text().splitlines()]
    # (repeats of one refusal are collapsed into one line with a count)
    assert entries and {(e["op"], e["errno"], os.path.basename(e["path"])) for e in entries} == {("link", "EXDEV", "obj")}, entries
    assert b"peninsula: denied" not in conf["_proc"].stderr, conf["_proc"].stderr


FIRST = r'''
P, O = sys.argv[1], sys.argv[2]
shm = "/dev/shm/.peninsula-linkout-%d" % os.getpid()
attempt("new_name_exists", sc, "link", O + "/obj", P + "/exists")
attempt("source_missing", sc, "link", O + "/missing", P + "/m")
attempt("new_parent_missing", sc, "link", O + "/obj", P + "/nodir/x")
attempt("new_name_too_long", sc, "link", O + "/obj", P + "/" + "n" * 256)
attempt("source_directory", sc, "link", O + "/dir", P + "/d")
attempt("other_filesystem", sc, "link", O + "/obj", shm)
# protected hard links: root's 0600 file, which only root may link
attempt("out_root_links_roots" if os.getuid() == 0 else "protected_hardlinks", sc, "link", O + "/roots", P + "/r")
attempt("out_setuid", sc, "link", O + "/suid", P + "/su")
attempt("out_fifo", sc, "link", O + "/fifo", P + "/f")
attempt("out_symlink_itself", sc, "linkat", AT_FDCWD, O + "/sym", AT_FDCWD, P + "/s", 0)
if os.path.exists(shm):
    os.unlink(shm)
done()
'''


def first_setup(box, project, outside):
    box.file(outside / "obj", "data\n")
    box.file(project / "exists", "mine\n")
    box.dir(outside / "dir")
    (outside / "roots").write_text("root's\n")
    os.chmod(outside / "roots", 0o600)
    box.file(outside / "suid", "#!/bin/sh\n")
    os.chmod(outside / "suid", 0o4755)  # after the chown, which clears it
    os.mkfifo(outside / "fifo", 0o644)
    box.own(outside / "fifo")
    os.symlink("obj", outside / "sym")
    box.own(outside / "sym")


def test_kernel_answers_come_first(box):
    special = {"out_fifo": "EPERM", "out_symlink_itself": "EPERM"}
    conf, ctl, pair, _ = run_twin(box, FIRST, first_setup, denied_errno="EXDEV", denied_by_key=special)
    want = {"new_name_exists": "EEXIST", "source_missing": "ENOENT", "new_parent_missing": "ENOENT",
            "new_name_too_long": "ENAMETOOLONG", "source_directory": "EPERM", "other_filesystem": "EXDEV"}
    if not box.who.is_root:
        want["protected_hardlinks"] = "EPERM"
    assert {key: conf[key] for key in want} == want
    assert (pair.project / "exists").read_text() == "mine\n"
    assert not any(os.path.lexists(pair.project / name) for name in ("r", "su", "f", "s"))
    # A symlink or FIFO from outside is refused as before: logged and
    # noticed. The EXDEV answers (setuid) are logged only.
    entries = [json.loads(line) for line in box.log.read_text().splitlines()]
    logged = sorted({(os.path.basename(e["path"]), e["errno"]) for e in entries})
    want = [("fifo", "EPERM"), ("suid", "EXDEV"), ("sym", "EPERM")]
    if box.who.is_root:
        want.insert(1, ("roots", "EXDEV"))
    assert logged == want, logged
    stderr = conf["_proc"].stderr.decode()
    assert "fifo" in stderr and "suid" not in stderr, stderr


PROTECTED = r'''
P, O, W = sys.argv[1], sys.argv[2], sys.argv[3]
attempt("from_protected", sc, "link", W + "/secret", P + "/s")
attempt("from_outside", sc, "link", O + "/obj", P + "/o")
done()
'''


def test_a_protected_source_is_noticed(box):
    """A source a protection refuses (a ~/.bashrc, not a repository a tool
    clones) gets the same EXDEV, but noticed: no tool links those, so the
    attempt is shown. A source merely outside the roots stays quiet."""
    writable = box.dir(box.base / "writable")
    box.file(writable / "secret", "keep\n")
    box.file(box.outside / "obj", "data\n")
    control = box.probe(PROTECTED, box.project, box.outside, writable, confined=False)
    assert control["from_protected"] == "OK" and control["from_outside"] == "OK", control
    for name in ("s", "o"):
        os.unlink(box.project / name)
    conf = box.probe(PROTECTED, box.project, box.outside, writable,
                     options=("--write", writable, "--protect", writable / "secret"))
    assert conf["from_protected"] == "EXDEV" and conf["from_outside"] == "EXDEV", conf
    stderr = conf["_proc"].stderr.decode()
    assert f"denied link of {writable / 'secret'}" in stderr and "obj" not in stderr, stderr
    assert os.stat(writable / "secret").st_nlink == 1 and not os.path.lexists(box.project / "s")
