"""rename, renameat, renameat2 (RENAME_NOREPLACE, RENAME_EXCHANGE) inside
and across the boundary both ways."""

import os

from .conftest import run_twin

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
od = os.open(O, os.O_RDONLY | os.O_DIRECTORY)
ob = os.path.basename(O)
NOREPLACE, EXCHANGE = 1, 2
attempt("in_rename", sc, "rename", P + "/a", P + "/a2")
attempt("in_renameat", sc, "renameat", pd, "b", pd, "sub/b2")
attempt("in_renameat2_noreplace", sc, "renameat2", pd, "c", pd, "c2", NOREPLACE)
attempt("in_renameat2_noreplace_exists", sc, "renameat2", pd, "c2", pd, "e1", NOREPLACE)
attempt("in_renameat2_exchange", sc, "renameat2", pd, "e1", pd, "e2", EXCHANGE)
attempt("in_rename_dir", sc, "rename", P + "/dir", P + "/dir2")
attempt("in_rename_over", sc, "rename", P + "/d", P + "/e3")
attempt("in_rename_relative", sc, "rename", "f", "f2")
attempt("in_rename_symlink_to_out", sc, "rename", P + "/to_out", P + "/to_out2")
attempt("in_rename_badflags", sc, "renameat2", pd, "f2", pd, "f3", 0x100)
attempt("in_rename_enoent", sc, "rename", P + "/nope", P + "/nope2")
# across the boundary, both ways, every syscall
attempt("out_rename_in_to_out", sc, "rename", P + "/g", O + "/g")
attempt("out_rename_out_to_in", sc, "rename", O + "/o1", P + "/o1")
attempt("out_renameat_in_to_out", sc, "renameat", pd, "h", od, "h")
attempt("out_renameat_out_to_in", sc, "renameat", od, "o2", pd, "o2")
attempt("out_renameat2_in_to_out", sc, "renameat2", pd, "i", od, "i", NOREPLACE)
attempt("out_renameat2_out_to_in", sc, "renameat2", od, "o3", pd, "o3", 0)
attempt("out_exchange_across", sc, "renameat2", pd, "x1", od, "x2", EXCHANGE)
attempt("out_exchange_across_rev", sc, "renameat2", od, "x2", pd, "x1", EXCHANGE)
attempt("out_rename_within_outside", sc, "rename", O + "/o4", O + "/o5")
attempt("out_rename_over_outside", sc, "rename", P + "/j", O + "/o4")
attempt("out_rename_dir_out", sc, "rename", P + "/dirout", O + "/dirout")
attempt("out_rename_via_symlink_dir", sc, "rename", P + "/k", P + "/to_out2/k")
attempt("out_rename_from_symlink_dir", sc, "rename", P + "/to_out2/o6", P + "/o6")
attempt("out_rename_dotdot", sc, "rename", P + "/l", P + "/sub/../../" + ob + "/l")
attempt("out_rename_relative", sc, "rename", "m", "../" + ob + "/m")
attempt("out_rename_devfd", sc, "rename", "n", "/dev/fd/%d/n" % od)
attempt("efault_rename", sc, "rename", P + "/a2", ctypes.c_void_p(8))
done()
'''


def setup(box, project, outside):
    for name in "abcdfghijklmn":
        box.file(project / name, name)
    box.file(project / "e1", "e1")
    box.file(project / "e2", "e2")
    box.file(project / "e3", "e3")
    box.file(project / "x1", "inside")
    box.file(outside / "x2", "outside")
    box.dir(project / "sub")
    box.dir(project / "dir")
    box.dir(project / "dirout")
    for i in range(1, 7):
        box.file(outside / f"o{i}", f"o{i}")
    os.symlink(outside, project / "to_out")
    box.own(project / "to_out")


def test_rename_family(box):
    conf, ctl, pair, _ = run_twin(box, BODY, setup)
    p = pair.project
    assert (p / "a2").read_text() == "a" and not (p / "a").exists()
    assert (p / "sub" / "b2").read_text() == "b"
    assert (p / "c2").read_text() == "c"
    assert (p / "e1").read_text() == "e2" and (p / "e2").read_text() == "e1"
    assert (p / "dir2").is_dir()
    assert (p / "e3").read_text() == "d"
    assert (p / "x1").read_text() == "inside"
    assert os.readlink(p / "to_out2") == str(pair.outside)
    for name in "ghijklmn":
        assert (p / name).read_text() == name
