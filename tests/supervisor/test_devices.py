"""Device nodes: a node is a door to its device wherever the node is. A
confined process cannot create device nodes, and cannot open for writing
(or chmod) a block device or an unusual character device even when its
node lies in the project; /dev/null-like nodes stay usable."""

import os
import stat

from .conftest import run_twin

DISK = os.stat("/").st_dev  # the block device holding the file systems here

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
DISK = int(sys.argv[3]) if len(sys.argv) > 3 else 0
attempt("x_mknod_block", sc, "mknod", P + "/newdisk", stat.S_IFBLK | 0o600, DISK)
attempt("x_mknod_char_mem", sc, "mknod", P + "/newmem", stat.S_IFCHR | 0o600, os.makedev(1, 1))
attempt("x_mknod_null", sc, "mknod", P + "/newnull", stat.S_IFCHR | 0o666, os.makedev(1, 3))
attempt("in_mknod_whiteout", sc, "mknod", P + "/whiteout", stat.S_IFCHR | 0o000, 0)
attempt("in_mknod_fifo", sc, "mknod", P + "/fifo", stat.S_IFIFO | 0o600, 0)
attempt("in_mknod_sock", sc, "mknod", P + "/sock", stat.S_IFSOCK | 0o600, 0)
attempt("out_open_block_node", sc, "open", P + "/disk", os.O_WRONLY)
attempt("out_open_block_node_rdwr", sc, "openat2", AT_FDCWD, P + "/disk", how(os.O_RDWR), 24)
attempt("out_open_kmsg_node", sc, "open", P + "/kmsg", os.O_WRONLY)
attempt("x_chmod_block_node", sc, "chmod", P + "/disk", 0o666)
attempt("in_open_null_node", sc, "open", P + "/null", os.O_WRONLY)
attempt("in_open_dev_null", sc, "open", "/dev/null", os.O_WRONLY)
attempt("in_open_dev_zero", sc, "open", "/dev/zero", os.O_RDWR)
attempt("rd_block_node", sc, "open", P + "/disk", os.O_RDONLY)
# /dev/null's contents are writable, its inode (mode, owner, times) is the host's
st = os.stat("/dev/null")
attempt("x_chmod_dev_null", sc, "chmod", "/dev/null", st.st_mode & 0o7777)
attempt("x_chown_dev_null", sc, "chown", "/dev/null", st.st_uid, st.st_gid)
attempt("x_utimes_dev_null", sc, "utimensat", AT_FDCWD, "/dev/null", ctypes.c_void_p(0), 0)
attempt("in_chmod_null_node_in_project", sc, "chmod", P + "/null", 0o666)
done()
'''


def setup(box, project, outside):
    # an unbound loop device: opening it for writing is harmless, and works
    # without peninsula (the disk holding / is mounted: the kernel refuses it)
    os.mknod(project / "disk", stat.S_IFBLK | 0o666, os.makedev(7, 7))
    os.mknod(project / "kmsg", stat.S_IFCHR | 0o666, os.makedev(1, 11))
    os.mknod(project / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    for name in ("disk", "kmsg", "null"):
        os.chmod(project / name, 0o666)  # as a careless image build would leave them


def test_device_nodes(box):
    body = BODY.replace("int(sys.argv[3]) if len(sys.argv) > 3 else 0", str(DISK))
    conf, ctl, pair, ctl_pair = run_twin(box, body, setup)
    want_native = "OK" if box.who.is_root else "EPERM"
    for key in ("x_mknod_block", "x_mknod_char_mem", "x_mknod_null"):
        assert ctl[key] == want_native, (key, ctl[key])
        assert conf[key] == "EPERM", (key, conf[key])
    assert ctl["x_chmod_block_node"] == ("OK" if box.who.is_root else "EPERM")
    assert conf["x_chmod_block_node"] == "EPERM"
    assert not (pair.project / "newdisk").exists() and not (pair.project / "newmem").exists()
    assert stat.S_ISFIFO(os.stat(pair.project / "fifo").st_mode)
    for key in ("x_chmod_dev_null", "x_chown_dev_null", "x_utimes_dev_null"):
        native = "OK" if box.who.is_root or key == "x_utimes_dev_null" else "EPERM"  # touch needs write access only
        assert ctl[key] == native, (key, ctl[key])
        assert conf[key] == "EPERM", (key, conf[key])
