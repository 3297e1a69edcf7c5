"""chattr through ioctl (FS_IOC_SETFLAGS, FS_IOC_FSSETXATTR): these work on
a read-only fd, so without a trap a confined root could make a file outside
immutable. Inside they work as without peninsula; outside EPERM."""

import fcntl
import os
import struct

from .conftest import run_twin

BODY = r'''
import fcntl
P, O = sys.argv[1], sys.argv[2]
GETFLAGS, SETFLAGS, FSGETXATTR, FSSETXATTR = 0x80086601, 0x40086602, 0x801C581F, 0x401C5820
NODUMP, NOATIME, XFLAG_NODUMP = 0x40, 0x80, 0x80

def setflag(path, bit):
    fd = os.open(path, os.O_RDONLY)
    flags = struct.unpack("i", fcntl.ioctl(fd, GETFLAGS, b"\0" * 4))[0]
    fcntl.ioctl(fd, SETFLAGS, struct.pack("i", flags | bit))
    os.close(fd)

def setxflag(path, bit):
    fd = os.open(path, os.O_RDONLY)
    raw = bytearray(fcntl.ioctl(fd, FSGETXATTR, b"\0" * 28))
    xflags = struct.unpack_from("I", raw)[0]
    struct.pack_into("I", raw, 0, xflags | bit)
    fcntl.ioctl(fd, FSSETXATTR, bytes(raw))
    os.close(fd)

def getflags(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, GETFLAGS, b"\0" * 4))[0]
    finally:
        os.close(fd)

for prefix, D in (("in", P), ("out", O)):
    attempt(prefix + "_setflags_nodump", setflag, D + "/a", NODUMP)
    attempt(prefix + "_setflags_noatime_dir", setflag, D + "/d", NOATIME)
    attempt(prefix + "_fssetxattr_nodump", setxflag, D + "/b", XFLAG_NODUMP)
    RESULTS["x_%s_flags_a" % prefix] = getflags(D + "/a") & NODUMP
attempt("out_setflags_via_symlink", setflag, P + "/to_out", NODUMP)
attempt("out_setflags_hardlink", setflag, P + "/hl", NODUMP)
attempt("in_setflags_opath", lambda: fcntl.ioctl(os.open(P + "/a", os.O_PATH), SETFLAGS, struct.pack("i", 0)))
attempt("in_setflags_efault", lambda: _libc.syscall(16, os.open(P + "/a", os.O_RDONLY), ctypes.c_ulong(SETFLAGS), ctypes.c_void_p(8)) == 0 or (_ for _ in ()).throw(OSError(ctypes.get_errno(), "")))
if os.getuid() == 0:
    IMMUTABLE = 0x10
    attempt("x_in_immutable", setflag, P + "/imm", IMMUTABLE)
    attempt("x_in_write_immutable", sc, "open", P + "/imm", os.O_WRONLY)
    fd = os.open(P + "/imm", os.O_RDONLY)
    attempt("x_in_clear_immutable", lambda: fcntl.ioctl(fd, SETFLAGS, struct.pack("i", getflags(P + "/imm") & ~IMMUTABLE)))
done()
'''


def setup(box, project, outside):
    for d in (project, outside):
        box.file(d / "a", "a")
        box.file(d / "b", "b")
        box.dir(d / "d")
    box.file(project / "imm", "imm")
    box.file(outside / "target", "t")
    os.symlink(outside / "target", project / "to_out")
    box.own(project / "to_out")
    box.file(outside / "shared", "s")
    os.link(outside / "shared", project / "hl")


def test_inode_flags(box):
    conf, ctl, pair, _ = run_twin(box, BODY, setup, denied_errno="EPERM")
    assert conf["x_in_flags_a"] == 0x40 and conf["x_out_flags_a"] == 0
    assert ctl["x_out_flags_a"] == 0x40
    if box.who.is_root:
        assert conf["x_in_immutable"] == "OK" and conf["x_in_write_immutable"] == "EPERM"
        assert conf["x_in_clear_immutable"] == "OK"
        fd = os.open(pair.project / "imm", os.O_RDONLY)
        flags = struct.unpack("i", fcntl.ioctl(fd, 0x80086601, b"\0" * 4))[0]
        os.close(fd)
        assert not flags & 0x10
