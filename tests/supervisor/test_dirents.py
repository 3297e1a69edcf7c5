"""mkdir(at), mknod(at), unlink(at), rmdir: inside as without peninsula,
outside EACCES; the tree outside never changes."""

import os
import stat

from .conftest import run_twin

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
os.umask(0o022)
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
od = os.open(O, os.O_RDONLY | os.O_DIRECTORY)
ob = os.path.basename(O)
for prefix, D, dfd in (("in", P, pd), ("out", O, od)):
    attempt(prefix + "_mkdir", sc, "mkdir", D + "/newdir", 0o777)
    attempt(prefix + "_mkdirat", sc, "mkdirat", dfd, "newdirat", 0o750)
    attempt(prefix + "_mknod_fifo", sc, "mknod", D + "/fifo", stat.S_IFIFO | 0o666, 0)
    attempt(prefix + "_mknodat_reg", sc, "mknodat", dfd, "regnode", stat.S_IFREG | 0o644, 0)
    attempt(prefix + "_unlink", sc, "unlink", D + "/victim")
    attempt(prefix + "_unlinkat", sc, "unlinkat", dfd, "victim2", 0)
    attempt(prefix + "_rmdir", sc, "rmdir", D + "/emptydir")
    attempt(prefix + "_unlinkat_removedir", sc, "unlinkat", dfd, "emptydir2", 0x200)
    attempt(prefix + "_unlink_symlink", sc, "unlink", D + "/alink")
attempt("out_mkdir_relative", sc, "mkdir", "../" + ob + "/reldir", 0o755)
attempt("out_mkdir_dotdot", sc, "mkdir", P + "/sub/../../" + ob + "/dotdotdir", 0o755)
attempt("out_mkdir_via_symlink_dir", sc, "mkdir", P + "/to_out/viasym", 0o755)
attempt("out_mkdirat_dotdot", sc, "mkdirat", pd, "../" + ob + "/atdotdot", 0o755)
attempt("out_unlink_via_symlink_dir", sc, "unlink", P + "/to_out/victim3")
attempt("out_mknod_via_devfd", sc, "mknod", "/dev/fd/%d/fifo2" % od, stat.S_IFIFO | 0o644, 0)
attempt("out_mkdir_proc_cwd", lambda: (os.chdir(O), sc("mkdir", "/proc/self/cwd/cwddir", 0o755), os.chdir(P)))
os.chdir(P)
# unlinking a symlink inside that points outside removes only the link
attempt("in_unlink_link_to_out", sc, "unlink", P + "/to_out_file")
attempt("in_mkdir_dangling", sc, "mkdir", P + "/dangling", 0o755)
attempt("in_mkdir_exists", sc, "mkdir", P + "/sub", 0o755)
attempt("in_rmdir_notempty", sc, "rmdir", P + "/sub")
attempt("in_rmdir_dot", sc, "rmdir", P + "/sub/.")
attempt("in_unlink_dir", sc, "unlink", P + "/sub")
attempt("in_unlinkat_badflag", sc, "unlinkat", pd, "sub", 0x4)
attempt("in_mkdir_trailing", sc, "mkdir", P + "/trail/", 0o755)
attempt("in_mknod_trailing", sc, "mknod", P + "/nodetrail/", stat.S_IFIFO | 0o644, 0)
attempt("in_mkdir_relative", sc, "mkdir", "reldir", 0o700)
attempt("in_mkdir_enoent", sc, "mkdir", P + "/no/such", 0o700)
attempt("efault_mkdir", sc, "mkdir", ctypes.c_void_p(16), 0o700)
attempt("enametoolong_unlink", sc, "unlink", "b" * 4100)
done()
'''


def setup(box, project, outside):
    for d in (project, outside):
        box.file(d / "victim")
        box.file(d / "victim2")
        box.dir(d / "emptydir")
        box.dir(d / "emptydir2")
        os.symlink("victim", d / "alink")
        box.own(d / "alink")
    box.dir(project / "sub")
    box.file(project / "sub" / "keep")
    box.file(outside / "victim3")
    for link, to in [("to_out", outside), ("to_out_file", outside / "victim"), ("dangling", outside / "made")]:
        os.symlink(to, project / link)
        box.own(project / link)


def test_dirents(box):
    conf, ctl, pair, _ = run_twin(box, BODY, setup)
    p = pair.project
    assert stat.S_IMODE(os.stat(p / "newdir").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(p / "newdirat").st_mode) == 0o750
    assert stat.S_ISFIFO(os.stat(p / "fifo").st_mode) and stat.S_IMODE(os.stat(p / "fifo").st_mode) == 0o644
    assert stat.S_ISREG(os.stat(p / "regnode").st_mode)
    for name in ("newdir", "fifo", "regnode", "reldir"):
        assert os.stat(p / name).st_uid == box.who.uid
    for gone in ("victim", "victim2", "emptydir", "emptydir2", "alink", "to_out_file"):
        assert not os.path.lexists(p / gone), gone
    assert (pair.outside / "victim").exists()
    assert conf["efault_mkdir"] == "EFAULT"
