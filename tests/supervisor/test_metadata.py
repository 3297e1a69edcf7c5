"""chmod, chown, utimes, truncate and xattr setters: Landlock cannot see most
of these, so the supervisor alone stops them outside (EPERM; truncate EACCES)."""

import os
import stat

from .conftest import run_twin

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
UID, GID = int(sys.argv[3]), int(sys.argv[4])
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
od = os.open(O, os.O_RDONLY | os.O_DIRECTORY)
NOFOLLOW, EMPTY = 0x100, 0x1000
ts = (ctypes.c_long * 4)(1000, 0, 2000, 0)
tv = (ctypes.c_long * 4)(3000, 0, 4000, 0)
ub = (ctypes.c_long * 2)(5000, 6000)
val = ctypes.create_string_buffer(b"v1")
xargs = ctypes.create_string_buffer(struct.pack("=QII", ctypes.addressof(val), 2, 0), 16)
for prefix, D, dfd in (("in", P, pd), ("out", O, od)):
    ro = os.open(D + "/fd_target", os.O_RDONLY)
    attempt(prefix + "_chmod", sc, "chmod", D + "/m1", 0o600)
    attempt(prefix + "_fchmodat", sc, "fchmodat", dfd, "m2", 0o640)
    attempt(prefix + "_fchmodat2", sc, "fchmodat2", dfd, "m3", 0o604, 0)
    attempt(prefix + "_fchmodat2_empty", sc, "fchmodat2", ro, "", 0o611, EMPTY)
    attempt(prefix + "_fchmod", sc, "fchmod", ro, 0o615)
    # tar's way to change an O_PATH fd: chmod and chown of /proc/self/fd/N
    op = os.open(D + "/fd_target", os.O_PATH)
    attempt(prefix + "_chmod_proc_self_fd", sc, "chmod", "/proc/self/fd/%d" % op, 0o617)
    attempt(prefix + "_chown_proc_self_fd", sc, "chown", "/proc/self/fd/%d" % op, UID, GID)
    attempt(prefix + "_utimensat_proc_self_fd", sc, "utimensat", AT_FDCWD, "/proc/self/fd/%d" % op, ts, 0)
    attempt(prefix + "_chown", sc, "chown", D + "/o1", UID, GID)
    attempt(prefix + "_lchown", sc, "lchown", D + "/link", UID, GID)
    attempt(prefix + "_fchownat", sc, "fchownat", dfd, "o2", UID, GID, NOFOLLOW)
    attempt(prefix + "_fchownat_empty", sc, "fchownat", ro, "", UID, GID, EMPTY)
    attempt(prefix + "_fchown", sc, "fchown", ro, UID, GID)
    attempt(prefix + "_utime", sc, "utime", D + "/t1", ub)
    attempt(prefix + "_utimes", sc, "utimes", D + "/t2", tv)
    attempt(prefix + "_utimensat", sc, "utimensat", dfd, "t3", ts, 0)
    attempt(prefix + "_utimensat_nofollow", sc, "utimensat", dfd, "link", ts, NOFOLLOW)
    attempt(prefix + "_futimens", sc, "utimensat", ro, ctypes.c_void_p(0), ts, 0)
    attempt(prefix + "_futimesat", sc, "futimesat", dfd, "t4", tv)
    attempt(prefix + "_utimensat_now", sc, "utimensat", dfd, "t5", ctypes.c_void_p(0), 0)
    attempt(prefix + "_setxattr", sc, "setxattr", D + "/x1", "user.a", val, 2, 0)
    attempt(prefix + "_lsetxattr", sc, "lsetxattr", D + "/x2", "user.a", val, 2, 0)
    attempt(prefix + "_fsetxattr", sc, "fsetxattr", ro, "user.a", val, 2, 0)
    attempt(prefix + "_setxattrat", sc, "setxattrat", dfd, "x3", 0, "user.b", xargs, 16)
    attempt(prefix + "_removexattr", sc, "removexattr", D + "/r1", "user.old")
    attempt(prefix + "_lremovexattr", sc, "lremovexattr", D + "/r2", "user.old")
    attempt(prefix + "_fremovexattr", sc, "fremovexattr", os.open(D + "/r3", os.O_RDONLY), "user.old")
    attempt(prefix + "_removexattrat", sc, "removexattrat", dfd, "r4", 0, "user.old")
    attempt("x_" + prefix + "_truncate", sc, "truncate", D + "/tr", 3)
# through links and magic links
fo = os.open(O + "/m4", os.O_RDONLY)
attempt("out_chmod_via_symlink", sc, "chmod", P + "/to_out_file", 0o600)
attempt("out_chmod_via_dir_symlink", sc, "chmod", P + "/to_out/m5", 0o600)
attempt("out_chmod_proc_fd", sc, "chmod", "/proc/self/fd/%d" % fo, 0o600)
attempt("out_chmod_dev_fd", sc, "fchmodat", AT_FDCWD, "/dev/fd/%d" % fo, 0o600)
attempt("out_chmod_hardlink", sc, "chmod", P + "/hl", 0o600)
attempt("out_utimes_hardlink", sc, "utimensat", pd, "hl", ts, 0)
attempt("out_setxattr_hardlink", sc, "setxattr", P + "/hl", "user.a", val, 2, 0)
attempt("out_chown_hardlink", sc, "chown", P + "/hl", UID, GID)
attempt("out_chmod_dotdot", sc, "chmod", P + "/../" + os.path.basename(O) + "/m5", 0o600)
attempt("x_out_truncate_symlink", sc, "truncate", P + "/to_out_tr", 0)
attempt("in_lchown_link_to_out", sc, "lchown", P + "/to_out_file", UID, GID)
attempt("in_chmod_symlink_nofollow", sc, "fchmodat2", pd, "to_out_file", 0o600, NOFOLLOW)
attempt("in_truncate_negative", sc, "truncate", P + "/tr", -1)
attempt("in_chmod_enoent", sc, "chmod", P + "/nope", 0o600)
attempt("efault_utimensat_times", sc, "utimensat", pd, "t1", ctypes.c_void_p(8), 0)
attempt("in_utimensat_badflags", sc, "utimensat", pd, "t1", ts, 0x2)
attempt("in_xattr_empty_name", sc, "setxattr", P + "/x1", "", val, 2, 0)
attempt("in_xattr_long_name", sc, "setxattr", P + "/x1", "user." + "n" * 300, val, 2, 0)
attempt("in_xattr_create_exists", sc, "setxattr", P + "/x1", "user.a", val, 2, 1)
done()
'''


def setup(box, project, outside):
    for d in (project, outside):
        for name in ("m1", "m2", "m3", "m4", "m5", "fd_target", "o1", "o2", "t1", "t2", "t3", "t4", "t5", "x1", "x2", "x3"):
            box.file(d / name, name, 0o644)
        for name in ("r1", "r2", "r3", "r4"):
            box.file(d / name, name)
            os.setxattr(d / name, "user.old", b"old")
        box.file(d / "tr", "truncate me")
        os.symlink("m1", d / "link")
        box.own(d / "link")
        os.utime(d / "t5", (1, 1))
    for link, to in [("to_out_file", outside / "m4"), ("to_out", outside), ("to_out_tr", outside / "tr")]:
        os.symlink(to, project / link)
        box.own(project / link)
    box.file(outside / "shared", "shared")
    os.link(outside / "shared", project / "hl")


def test_metadata(box):
    uid, gid = (4321, 4321) if box.who.is_root else (box.who.uid, box.who.gid)
    body = BODY.replace("int(sys.argv[3]), int(sys.argv[4])", f"{uid}, {gid}")
    # Write access, not ownership, is what the kernel asks for touching a
    # file with the current time and for user.* xattrs: EACCES.
    write_access = ("out_utimensat_now", "out_setxattr", "out_lsetxattr", "out_fsetxattr", "out_setxattrat",
                    "out_removexattr", "out_lremovexattr", "out_fremovexattr", "out_removexattrat")
    conf, ctl, pair, _ = run_twin(box, body, setup, denied_errno="EPERM", denied_by_key=dict.fromkeys(write_access, "EACCES"))
    assert ctl["x_out_truncate"] == "OK" and conf["x_out_truncate"] == "EACCES"
    assert ctl["x_out_truncate_symlink"] == "OK" and conf["x_out_truncate_symlink"] == "EACCES"
    assert conf["x_in_truncate"] == "OK"
    p = pair.project
    mode = lambda n: stat.S_IMODE(os.stat(p / n).st_mode)
    assert (mode("m1"), mode("m2"), mode("m3"), mode("fd_target")) == (0o600, 0o640, 0o604, 0o617)
    for name in ("o1", "o2", "fd_target"):
        assert (os.stat(p / name).st_uid, os.stat(p / name).st_gid) == (uid, gid), name
    assert os.lstat(p / "link").st_uid == uid
    assert os.stat(p / "t1").st_mtime == 6000 and os.stat(p / "t2").st_mtime == 4000
    assert os.stat(p / "t3").st_mtime == 2000 and os.stat(p / "t4").st_mtime == 4000
    assert os.stat(p / "t5").st_mtime > 1000
    assert os.getxattr(p / "x1", "user.a") == b"v1" and os.getxattr(p / "x3", "user.b") == b"v1"
    assert os.getxattr(p / "fd_target", "user.a") == b"v1"
    for name in ("r1", "r2", "r3", "r4"):
        assert "user.old" not in os.listxattr(p / name), name
    assert (p / "tr").read_bytes() == b"tru"
    assert (pair.outside / "tr").read_bytes() == b"truncate me"
