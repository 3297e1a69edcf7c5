"""openat2's RESOLVE_* flags keep their meaning when the supervisor does the
open, and never widen what may be written."""

import os

from .conftest import run_twin

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
od = os.open(O, os.O_RDONLY | os.O_DIRECTORY)
ob = os.path.basename(O)
C = os.O_CREAT | os.O_WRONLY
NO_XDEV, NO_MAGIC, NO_SYM, BENEATH, IN_ROOT, CACHED = 1, 2, 4, 8, 16, 32
def o2(name, dfd, path, flags, resolve, mode=0o644):
    attempt(name, sc, "openat2", dfd, path, how(flags, mode if flags & os.O_CREAT else 0, resolve), 24)
o2("in_beneath", pd, "sub/b1", C, BENEATH)
o2("in_beneath_dotdot_inside", pd, "sub/../b2", C, BENEATH)
o2("in_beneath_escape", pd, "../" + ob + "/b3", C, BENEATH)
o2("in_beneath_abs", pd, O + "/b4", C, BENEATH)
o2("in_beneath_symlink_out", pd, "to_out/b5", C, BENEATH)
o2("in_beneath_symlink_abs_inside", pd, "abs_in/b6", C, BENEATH)
o2("in_beneath_symlink_rel_inside", pd, "rel_in/b7", C, BENEATH)
o2("in_beneath_existing", pd, "existing", os.O_WRONLY, BENEATH)
o2("in_in_root_abs", pd, "/r1", C, IN_ROOT)
o2("in_in_root_dotdot", pd, "../../r2", C, IN_ROOT)
o2("in_in_root_symlink_abs", pd, "abs_root/r3", C, IN_ROOT)
o2("in_in_root_existing", pd, "/existing", os.O_RDWR, IN_ROOT)
o2("in_no_symlinks", pd, "rel_in/n1", C, NO_SYM)
o2("in_no_symlinks_plain", pd, "sub/n2", C, NO_SYM)
o2("in_no_symlinks_final", pd, "final_link", os.O_WRONLY, NO_SYM)
o2("in_no_symlinks_dangling", pd, "dangling_in", C, NO_SYM)
o2("in_no_xdev_proc", AT_FDCWD, "/proc/self/comm", os.O_WRONLY, NO_XDEV)
o2("in_no_xdev_same", pd, "sub/x1", C, NO_XDEV)
o2("in_no_xdev_shm", pd, "/dev/shm/peninsula-xdev-%d" % os.getpid(), C, NO_XDEV)
o2("in_no_magic_proc_fd", AT_FDCWD, "/proc/self/fd/%d/m1" % pd, C, NO_MAGIC)
o2("in_no_magic_dev_stdout", AT_FDCWD, "/dev/stdout", os.O_WRONLY, NO_MAGIC)
o2("in_magic_allowed", AT_FDCWD, "/proc/self/fd/%d/m2" % pd, C, 0)
o2("in_cached_create", pd, "c1", C, CACHED)
o2("in_bad_resolve", pd, "c2", C, 1 << 10)
o2("in_directory_creat", pd, "c3", C | os.O_DIRECTORY, 0)
o2("in_dangling_beneath", pd, "dangling_in", C, BENEATH)
o2("in_dangling_in_root", pd, "dangling_abs", C, IN_ROOT)
o2("out_plain", od, "p1", C, 0)
o2("out_in_root_from_outside", od, "/p2", C, IN_ROOT)
o2("out_no_xdev", od, "p3", C, NO_XDEV)
o2("rd_beneath_outside", od, "existing", os.O_RDONLY, BENEATH)
o2("rd_plain_outside", AT_FDCWD, O + "/existing", os.O_RDONLY, 0)
o2("rd_beneath_escape", pd, "../" + ob + "/existing", os.O_RDONLY, BENEATH)
done()
'''


def setup(box, project, outside):
    box.dir(project / "sub")
    box.file(project / "existing", "e")
    box.file(outside / "existing", "e")
    for link, to in [("to_out", outside), ("abs_in", project / "sub"), ("rel_in", "sub"),
                     ("abs_root", "/sub"), ("final_link", "existing"), ("dangling_in", "made_dangling"),
                     ("dangling_abs", "/made_abs")]:
        os.symlink(to, project / link)
        box.own(project / link)


def test_openat2_resolve_flags(box):
    conf, ctl, pair, _ = run_twin(box, BODY, setup)
    p = pair.project
    for name in ("sub/b1", "b2", "r1", "r2", "sub/r3", "sub/n2", "sub/x1", "m2"):
        assert (p / name).exists(), name
