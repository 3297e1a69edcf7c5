"""link and linkat: both ends must be allowed; a pre-existing hard link to a
file outside cannot be written; links made inside the sandbox are fine."""

import os

from .conftest import run_twin

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
od = os.open(O, os.O_RDONLY | os.O_DIRECTORY)
ob = os.path.basename(O)
FOLLOW, EMPTY = 0x400, 0x1000
attempt("in_link", sc, "link", P + "/a", P + "/a_link")
attempt("in_linkat", sc, "linkat", pd, "a", pd, "sub/a_linkat", 0)
attempt("in_linkat_follow", sc, "linkat", pd, "sym_a", pd, "a_follow", FOLLOW)
attempt("in_linkat_nofollow", sc, "linkat", pd, "sym_a", pd, "sym_a_link", 0)
attempt("in_link_exists", sc, "link", P + "/a", P + "/b")
attempt("in_link_dir", sc, "link", P + "/sub", P + "/sub_link")
attempt("in_linkat_badflags", sc, "linkat", pd, "a", pd, "bad", 0x2)
attempt("in_link_relative", sc, "link", "b", "b_link")
fa = os.open(P + "/b", os.O_RDONLY)
if os.getuid() == 0:  # AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH
    attempt("in_linkat_empty", sc, "linkat", fa, "", pd, "b_empty", EMPTY)
attempt("in_linkat_procfd", sc, "linkat", AT_FDCWD, "/proc/self/fd/%d" % fa, pd, "b_procfd", FOLLOW)
# a file with two names cannot be written, even when both are inside
attempt("x_write_new_link", sc, "open", P + "/a_link", os.O_WRONLY)
attempt("in_read_new_link", sc, "open", P + "/a_link", os.O_RDONLY)

attempt("out_link_from_outside", sc, "link", O + "/secret", P + "/stolen")
attempt("out_link_to_outside", sc, "link", P + "/c", O + "/planted")
attempt("out_linkat_from_outside", sc, "linkat", od, "secret", pd, "stolen2", 0)
attempt("out_linkat_to_outside", sc, "linkat", pd, "c", od, "planted2", 0)
attempt("out_linkat_follow_symlink_out", sc, "linkat", pd, "sym_out", pd, "stolen3", FOLLOW)
attempt("out_linkat_dotdot", sc, "linkat", pd, "c", pd, "../" + ob + "/planted3", 0)
attempt("out_link_via_symlink_dir", sc, "link", P + "/c", P + "/to_out/planted4")
fo = os.open(O + "/secret", os.O_RDONLY)
attempt("out_linkat_procfd_outside", sc, "linkat", AT_FDCWD, "/proc/self/fd/%d" % fo, pd, "stolen4", FOLLOW)
attempt("out_linkat_devfd_outside", sc, "linkat", AT_FDCWD, "/dev/fd/%d" % fo, pd, "stolen5", FOLLOW)
if os.getuid() == 0:
    attempt("out_linkat_empty_outside", sc, "linkat", fo, "", pd, "stolen6", EMPTY)
# pre-existing hard link into the project of a file outside: no writes
for name, flags in (("wronly", os.O_WRONLY), ("rdwr", os.O_RDWR), ("trunc", os.O_WRONLY | os.O_TRUNC), ("append", os.O_WRONLY | os.O_APPEND)):
    attempt("out_hardlinked_" + name, sc, "open", P + "/hl", flags)
attempt("out_hardlinked_truncate", sc, "truncate", P + "/hl", 0)
attempt("out_hardlinked_creat", sc, "creat", P + "/hl", 0o644)
attempt("rd_hardlinked", sc, "open", P + "/hl", os.O_RDONLY)
attempt("in_unlink_hardlinked", sc, "unlink", P + "/hl2")
done()
'''


def setup(box, project, outside):
    box.file(project / "a", "a")
    box.file(project / "b", "b")
    box.file(project / "c", "c")
    box.dir(project / "sub")
    box.file(outside / "secret", "secret")
    box.file(outside / "shared", "shared")
    box.file(outside / "shared2", "shared2")
    os.link(outside / "shared", project / "hl")
    os.link(outside / "shared2", project / "hl2")
    for link, to in [("sym_a", "a"), ("sym_out", outside / "secret"), ("to_out", outside)]:
        os.symlink(to, project / link)
        box.own(project / link)


def test_link_family(box):
    # A link of a regular file from outside into the project: EXDEV, as
    # between two file systems (test_link_from_outside).
    foreign = ("out_link_from_outside", "out_linkat_from_outside", "out_linkat_follow_symlink_out",
               "out_linkat_procfd_outside", "out_linkat_devfd_outside", "out_linkat_empty_outside")
    conf, ctl, pair, _ = run_twin(box, BODY, setup, denied_by_key=dict.fromkeys(foreign, "EXDEV"))
    p, o = pair.project, pair.outside
    assert os.stat(p / "a_link").st_ino == os.stat(p / "a").st_ino
    assert os.stat(p / "sub" / "a_linkat").st_ino == os.stat(p / "a").st_ino
    assert os.stat(p / "a_follow").st_ino == os.stat(p / "a").st_ino
    assert os.path.islink(p / "sym_a_link")
    assert os.stat(p / "b_procfd").st_ino == os.stat(p / "b").st_ino
    assert (o / "shared").read_text() == "shared"
    assert not (p / "hl2").exists() and (o / "shared2").exists()
    assert conf["x_write_new_link"] == "EACCES"
    assert not any((p / n).exists() for n in ("stolen", "stolen2", "stolen3", "stolen4", "stolen5", "stolen6"))
