"""The supervisor acts with the target's identity. As root, a sandboxed
command that drops to another uid (setpriv --reuid=65534) can do inside the
project only what that uid could do without peninsula, and what it creates
belongs to that uid."""

import os
import stat

from .conftest import run_twin

NOBODY = 65534
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
C = os.O_CREAT | os.O_WRONLY
RESULTS["x_uid"] = os.getuid()
attempt("create_in_root_dir", sc, "open", P + "/rootonly/x", C, 0o644)
attempt("mkdir_in_root_dir", sc, "mkdir", P + "/rootonly/d", 0o755)
attempt("create_in_open_dir", sc, "open", P + "/open/made", C, 0o644)
attempt("mkdir_in_open_dir", sc, "mkdir", P + "/open/dir", 0o755)
attempt("symlink_in_open_dir", sc, "symlink", "x", P + "/open/link")
attempt("write_root_file", sc, "open", P + "/open/rootfile", os.O_WRONLY)
attempt("write_world_writable_in_private_dir", sc, "open", P + "/private/ww", os.O_WRONLY)
attempt("openat2_read_private_file", sc, "openat2", AT_FDCWD, P + "/secret", how(os.O_RDONLY), 24)
attempt("openat2_read_in_private_dir", sc, "openat2", AT_FDCWD, P + "/private/ww", how(os.O_RDONLY), 24)
attempt("chmod_root_file", sc, "chmod", P + "/open/rootfile", 0o777)
attempt("chown_root_file", sc, "chown", P + "/open/rootfile", 65534, 65534)
attempt("utimes_now_root_file", sc, "utimensat", AT_FDCWD, P + "/open/rootfile", ctypes.c_void_p(0), 0)
attempt("setxattr_root_file", sc, "setxattr", P + "/open/rootfile", "user.x", ctypes.c_char_p(b"1"), 1, 0)
attempt("truncate_root_file", sc, "truncate", P + "/open/rootfile", 0)
attempt("unlink_in_root_dir", sc, "unlink", P + "/rootonly/f")
attempt("rename_out_of_root_dir", sc, "rename", P + "/rootonly/f", P + "/open/f")
attempt("link_root_private_file", sc, "link", P + "/secret", P + "/open/secret_link")
attempt("unlink_sticky_other", sc, "unlink", P + "/sticky/rootfile")
attempt("fifo_root_private", sc, "open", P + "/open/fifo", os.O_WRONLY)
attempt("mknod_device", sc, "mknod", P + "/open/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
attempt("tmpfile_in_root_dir", sc, "open", P + "/rootonly", os.O_TMPFILE | os.O_WRONLY, 0o600)
done()
'''


def setup(box, project, outside):
    os.chmod(project, 0o755)
    for d, mode in (("rootonly", 0o755), ("open", 0o777), ("private", 0o700), ("sticky", 0o1777)):
        (project / d).mkdir()
        os.chmod(project / d, mode)
    (project / "rootonly" / "f").write_text("f")
    (project / "open" / "rootfile").write_text("root's")
    (project / "sticky" / "rootfile").write_text("root's")
    (project / "private" / "ww").write_text("ww")
    os.chmod(project / "private" / "ww", 0o666)
    (project / "secret").write_text("secret")
    os.chmod(project / "secret", 0o600)
    os.mkfifo(project / "open" / "fifo", 0o600)


def test_dropped_uid_gets_its_own_rights(root_box):
    conf, ctl, pair, _ = run_twin(root_box, BODY, setup, prefix=SETPRIV)
    assert conf["x_uid"] == NOBODY
    p = pair.project
    assert conf["create_in_open_dir"] == "OK" and conf["create_in_root_dir"] == "EACCES"
    assert conf["write_world_writable_in_private_dir"] == "EACCES"
    assert conf["openat2_read_private_file"] == "EACCES"
    assert conf["fifo_root_private"] == "EACCES"
    for name in ("made", "dir", "link"):
        st = os.lstat(p / "open" / name)
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY), name
    assert not (p / "rootonly" / "x").exists()
    assert (p / "open" / "rootfile").read_text() == "root's"


NODUMP = r'''
P = sys.argv[1]
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0, as ssh-agent does
attempt("mkdir", sc, "mkdir", P + "/nodump_dir", 0o755)
attempt("open", sc, "open", P + "/nodump_file", os.O_CREAT | os.O_WRONLY, 0o644)
done()
'''


def test_non_dumpable_process(box):
    """A process that made itself non-dumpable cannot have its memory read
    by a supervisor without CAP_SYS_PTRACE: as a plain user its trapped
    calls fail closed (EPERM) with a notice that says why; a root
    supervisor serves it."""
    conf = box.probe(NODUMP, box.project)
    if box.who.is_root:
        assert conf["mkdir"] == conf["open"] == "OK"
        assert (box.project / "nodump_dir").is_dir()
    else:
        assert conf["mkdir"] == conf["open"] == "EPERM"
        assert b"not dumpable" in conf["_proc"].stderr
        assert not (box.project / "nodump_dir").exists()
