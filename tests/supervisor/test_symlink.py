"""symlink and symlinkat: creating a link is a write where the link is,
wherever it points; following one is judged where it lands."""

import os

from .conftest import run_twin

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
od = os.open(O, os.O_RDONLY | os.O_DIRECTORY)
ob = os.path.basename(O)
attempt("in_symlink", sc, "symlink", "target", P + "/s1")
attempt("in_symlink_to_outside", sc, "symlink", O + "/secret", P + "/s2")
attempt("in_symlinkat", sc, "symlinkat", "../x", pd, "s3")
attempt("in_symlink_exists", sc, "symlink", "t", P + "/s1")
attempt("in_symlink_relative", sc, "symlink", "t", "s4")
attempt("in_symlink_trailing", sc, "symlink", "t", P + "/s5/")
attempt("in_symlink_empty_target", sc, "symlink", "", P + "/s6")
attempt("out_symlink", sc, "symlink", P + "/whatever", O + "/s1")
attempt("out_symlinkat", sc, "symlinkat", "x", od, "s2")
attempt("out_symlinkat_dotdot", sc, "symlinkat", "x", pd, "../" + ob + "/s3")
attempt("out_symlink_via_dir_link", sc, "symlink", "x", P + "/to_out/s4")
# the link made inside to a file outside does not make it writable
attempt("out_write_via_new_link", sc, "open", P + "/s2", os.O_WRONLY)
attempt("out_creat_via_new_link", sc, "open", P + "/s7", os.O_WRONLY | os.O_CREAT, 0o644)
attempt("rd_via_new_link", sc, "open", P + "/s2", os.O_RDONLY)
# a link inside pointing inside is followed
attempt("in_write_via_link", sc, "open", P + "/s8", os.O_WRONLY | os.O_CREAT, 0o644)
done()
'''


def setup(box, project, outside):
    box.file(outside / "secret", "secret")
    box.file(project / "t", "t")
    for link, to in [("to_out", outside), ("s7", outside / "made"), ("s8", "made_inside")]:
        os.symlink(to, project / link)
        box.own(project / link)


def test_symlink_family(box):
    conf, ctl, pair, _ = run_twin(box, BODY, setup)
    p = pair.project
    assert os.readlink(p / "s1") == "target" and os.readlink(p / "s3") == "../x"
    assert os.readlink(p / "s2") == str(pair.outside / "secret")
    assert os.lstat(p / "s1").st_uid == box.who.uid
    assert (p / "made_inside").exists()
    assert (pair.outside / "secret").read_text() == "secret"
