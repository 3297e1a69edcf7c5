"""open, openat, creat and openat2 with write intent: inside works exactly as
without peninsula, outside is refused with EACCES, reads work everywhere."""

import os
import stat

from .conftest import run_twin, snapshot

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
os.umask(0o027)
W, C = os.O_WRONLY, os.O_CREAT | os.O_WRONLY
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
od = os.open(O, os.O_RDONLY | os.O_DIRECTORY)

def write(path, data, flags=C | os.O_TRUNC, mode=0o666):
    fd = os.open(path, flags, mode)
    os.write(fd, data)
    os.close(fd)

# plain creates, each syscall
attempt("in_open", sc, "open", P + "/a", C, 0o666)
attempt("in_openat", sc, "openat", pd, "b", C | os.O_EXCL, 0o600)
attempt("in_creat", sc, "creat", P + "/c", 0o640)
attempt("in_openat2", sc, "openat2", AT_FDCWD, P + "/d", how(C, 0o777), 24)
attempt("in_relative", sc, "open", "rel", C, 0o644)
attempt("in_dotdot_back", sc, "open", "sub/../dotdot", C, 0o644)
attempt("in_write", write, P + "/content", b"hello")
attempt("in_trunc", sc, "open", P + "/existing", os.O_WRONLY | os.O_TRUNC)
attempt("in_append", write, P + "/appended", b"+more", os.O_WRONLY | os.O_APPEND)
attempt("in_rdwr", sc, "open", P + "/existing2", os.O_RDWR)
attempt("in_excl_exists", sc, "open", P + "/existing2", C | os.O_EXCL, 0o644)
attempt("in_dir_wronly", sc, "open", P + "/sub", os.O_WRONLY)
attempt("in_missing_dir", sc, "open", P + "/nodir/x", C, 0o644)
attempt("in_trailing_slash", sc, "open", P + "/newslash/", C, 0o644)
attempt("in_notdir", sc, "open", P + "/existing/x", C, 0o644)

attempt("out_open", sc, "open", O + "/a", C, 0o666)
attempt("out_openat", sc, "openat", od, "b", C | os.O_EXCL, 0o600)
attempt("out_creat", sc, "creat", O + "/c", 0o640)
attempt("out_openat2", sc, "openat2", AT_FDCWD, O + "/d", how(C, 0o644), 24)
attempt("out_existing_wronly", sc, "open", O + "/existing", W)
attempt("out_existing_rdwr", sc, "open", O + "/existing", os.O_RDWR)
attempt("out_existing_trunc", sc, "open", O + "/existing", os.O_RDONLY | os.O_TRUNC)
attempt("out_existing_append", sc, "open", O + "/existing", W | os.O_APPEND)
attempt("out_openat2_existing", sc, "openat2", od, "existing", how(os.O_RDWR), 24)
attempt("out_relative", sc, "open", "../" + os.path.basename(O) + "/rel", C, 0o644)
attempt("out_dotdot", sc, "open", P + "/sub/../../" + os.path.basename(O) + "/dd", C, 0o644)
attempt("out_openat_dotdot", sc, "openat", pd, "../" + os.path.basename(O) + "/dd2", C, 0o644)
attempt("out_openat_abs", sc, "openat", pd, O + "/abs", C, 0o644)
attempt("out_symlink_mid", sc, "open", P + "/to_out/viamid", C, 0o644)
attempt("out_symlink_final", sc, "open", P + "/to_out_file", W)
attempt("out_symlink_final_trunc", sc, "open", P + "/to_out_file", W | os.O_TRUNC)
attempt("out_dangling", sc, "open", P + "/dangling", C, 0o644)
attempt("out_dangling_rel", sc, "open", P + "/dangling_rel", C, 0o644)
attempt("out_dangling_chain", sc, "open", P + "/chain1", C, 0o644)
attempt("out_dangling_openat2", sc, "openat2", AT_FDCWD, P + "/dangling2", how(C, 0o644), 24)
attempt("out_dangling_creat", sc, "creat", P + "/dangling3", 0o644)
attempt("in_dangling_inside", sc, "open", P + "/dangling_in", C, 0o644)
attempt("in_via_outside_link", sc, "open", O + "/link_in", C, 0o644)
attempt("in_nofollow_link", sc, "open", P + "/dangling", C | os.O_NOFOLLOW, 0o644)
attempt("in_excl_dangling", sc, "open", P + "/dangling", C | os.O_EXCL, 0o644)
attempt("out_hardlinked", sc, "open", P + "/hardlink", W)

# reads are never restricted
attempt("rd_outside", sc, "open", O + "/existing", os.O_RDONLY)
attempt("rd_outside_openat2", sc, "openat2", od, "existing", how(os.O_RDONLY), 24)
attempt("rd_etc", sc, "open", "/etc/passwd", os.O_RDONLY)
attempt("rd_via_symlink", sc, "open", P + "/to_out_file", os.O_RDONLY)
attempt("rd_hardlinked", sc, "open", P + "/hardlink", os.O_RDONLY)
attempt("rd_creat_existing_outside", sc, "open", O + "/existing", os.O_RDONLY | os.O_CREAT, 0o644)
with open(O + "/existing", "rb") as f:
    RESULTS["x_read_data"] = f.read().decode()

# O_TMPFILE and linking it in
def tmpfile_link_empty(d, name):
    fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o640)
    os.write(fd, b"tmp")
    try:
        sc("linkat", fd, "", AT_FDCWD, d + "/" + name, 0x1000)
    finally:
        os.close(fd)

def tmpfile_link_proc(d, dest):
    fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o640)
    os.write(fd, b"tmp")
    try:
        sc("linkat", AT_FDCWD, "/proc/self/fd/%d" % fd, AT_FDCWD, dest, 0x400)
    finally:
        os.close(fd)

attempt("in_tmpfile", sc, "open", P, os.O_TMPFILE | os.O_WRONLY, 0o600)
attempt("in_tmpfile_openat2", sc, "openat2", pd, ".", how(os.O_TMPFILE | os.O_RDWR, 0o600), 24)
attempt("out_tmpfile", sc, "open", O, os.O_TMPFILE | os.O_WRONLY, 0o600)
attempt("in_tmpfile_link_proc", tmpfile_link_proc, P, P + "/tmp_linked")
attempt("out_tmpfile_link_proc", tmpfile_link_proc, P, O + "/tmp_linked")
if os.getuid() == 0:
    attempt("in_tmpfile_link_empty", tmpfile_link_empty, P, "tmp_linked2")
attempt("in_opath_creat", sc, "open", P + "/opath_new", os.O_PATH | os.O_CREAT | os.O_WRONLY, 0o644)
attempt("in_opath_outside_wronly", sc, "open", O + "/existing", os.O_PATH | os.O_WRONLY)
attempt("in_opath_openat2_creat", sc, "openat2", AT_FDCWD, P + "/opath_new2", how(os.O_PATH | os.O_CREAT, 0o644), 24)
attempt("x_opath_openat2", sc, "openat2", AT_FDCWD, P + "/existing", how(os.O_PATH), 24)
attempt("in_creat_on_dir", sc, "open", P + "/sub", os.O_RDONLY | os.O_CREAT, 0o644)
attempt("in_creat_on_dir_outside", sc, "open", O + "/sub", os.O_RDONLY | os.O_CREAT, 0o644)
attempt("in_symlink_loop", sc, "open", P + "/loop1", C, 0o644)
attempt("in_symlink_loop_nocreat", sc, "open", P + "/loop1", W)
attempt("in_tmpfile_link_empty_any", tmpfile_link_empty, P, "tmp_linked3")
attempt("out_tmpfile_link_empty_any", lambda: (lambda fd: sc("linkat", fd, "", od, "tmp_out", 0x1000))(os.open(P, os.O_TMPFILE | os.O_RDWR, 0o600)))
attempt("in_tmpfile_excl_link", lambda: (lambda fd: sc("linkat", AT_FDCWD, "/proc/self/fd/%d" % fd, AT_FDCWD, P + "/never", 0x400))(os.open(P, os.O_TMPFILE | os.O_WRONLY | os.O_EXCL, 0o600)))

# /proc/self/cwd, /dev/fd/N, /dev/stdout, /proc/self/fd/N name the target's objects
attempt("in_proc_cwd", sc, "open", "/proc/self/cwd/via_cwd", C, 0o644)
attempt("in_thread_self_cwd", sc, "open", "/proc/thread-self/cwd/via_tcwd", C, 0o644)
attempt("in_proc_pid_cwd", sc, "open", "/proc/%d/cwd/via_pidcwd" % os.getpid(), C, 0o644)
attempt("in_dev_fd_dir", sc, "open", "/dev/fd/%d/via_devfd" % pd, C, 0o644)
attempt("in_proc_fd_dir", sc, "open", "/proc/self/fd/%d/via_procfd" % pd, C, 0o644)
attempt("in_proc_fd_dotdot", sc, "open", "/proc/self/fd/%d/sub/../via_procfd2" % pd, C, 0o644)
attempt("out_dev_fd_dir", sc, "open", "/dev/fd/%d/via_devfd" % od, C, 0o644)
attempt("out_proc_fd_dir", sc, "open", "/proc/self/fd/%d/via_procfd" % od, C, 0o644)
attempt("out_proc_fd_dotdot", sc, "open", "/proc/self/fd/%d/../%s/pfdd" % (pd, os.path.basename(O)), C, 0o644)
ro = os.open(O + "/existing", os.O_RDONLY)
os.dup2(ro, 57)
attempt("out_dev_fd_file", sc, "open", "/dev/fd/57", W)
attempt("out_proc_fd_file", sc, "open", "/proc/self/fd/57", os.O_RDWR)
attempt("out_proc_pid_fd_file", sc, "open", "/proc/%d/fd/57" % os.getpid(), W)
attempt("rd_proc_fd_file", sc, "open", "/proc/self/fd/57", os.O_RDONLY)
inf = os.open(P + "/existing2", os.O_RDONLY)
os.dup2(inf, 58)
attempt("in_dev_fd_file", write, "/dev/fd/58", b"via fd 58", os.O_WRONLY | os.O_APPEND)
os.chdir(O)
attempt("out_proc_cwd", sc, "open", "/proc/self/cwd/via_cwd", C, 0o644)
attempt("out_relative_cwd", sc, "open", "relcwd", C, 0o644)
os.chdir(P)

# stdout: a pipe to the test, then a file inside, then a file outside
attempt("in_dev_stdout", write, "/dev/stdout", b"", os.O_WRONLY)
r, w = os.pipe()
attempt("in_pipe_reopen", write, "/proc/self/fd/%d" % w, b"through the pipe", os.O_WRONLY)
attempt("in_pipe_devfd", write, "/dev/fd/%d" % w, b"!", os.O_WRONLY)
os.close(w)
RESULTS["pipe_data"] = os.read(r, 100).decode()
saved = os.dup(1)
fd = os.open(P + "/stdout_file", C, 0o644)
os.dup2(fd, 1)
attempt("in_dev_stdout_file", write, "/dev/stdout", b"to stdout file", os.O_WRONLY | os.O_APPEND)
attempt("in_dev_stderr_to_stdout", write, "/dev/stderr", b"", os.O_WRONLY | os.O_APPEND)
os.dup2(ro, 1)
attempt("out_dev_stdout", sc, "open", "/dev/stdout", W)
os.dup2(saved, 1)

# bad pointers and lengths
import mmap
m = mmap.mmap(-1, 8192)
base = ctypes.addressof(ctypes.c_char.from_buffer(m))
libc_munmap = _libc.munmap
libc_munmap(ctypes.c_void_p(base + 4096), ctypes.c_size_t(4096))
tail = ctypes.c_char_p(None)
ctypes.memmove(base + 4096 - 8, b"abcdefgh", 8)
attempt("efault_unterminated", sc, "open", ctypes.c_void_p(base + 4096 - 8), C, 0o644)
ctypes.memmove(base + 4096 - 8, b"abcdefg\0", 8)
os.chdir(P)
attempt("in_ends_at_page_end", sc, "open", ctypes.c_void_p(base + 4096 - 8), C, 0o644)
attempt("efault_null", sc, "open", ctypes.c_void_p(0), C, 0o644)
attempt("efault_low", sc, "open", ctypes.c_void_p(1), C, 0o644)
attempt("efault_openat2_how", sc, "openat2", AT_FDCWD, P + "/x", ctypes.c_void_p(8), 24)
attempt("einval_openat2_small", sc, "openat2", AT_FDCWD, P + "/x", how(C, 0o644), 8)
attempt("e2big_openat2", sc, "openat2", AT_FDCWD, P + "/x", ctypes.create_string_buffer(struct.pack("=QQQQ", C, 0o644, 0, 1), 32), 32)
attempt("einval_openat2_mode", sc, "openat2", AT_FDCWD, P + "/x", how(os.O_WRONLY, 0o644), 24)
attempt("enametoolong", sc, "open", "a" * 5000, C, 0o644)
done()
'''


def setup(box, project, outside):
    box.dir(project / "sub")
    box.file(project / "existing", "old contents")
    box.file(project / "existing2", "second")
    box.file(project / "appended", "base")
    box.file(outside / "existing", "outside data")
    box.dir(outside / "sub")
    for link, to in [
        ("to_out", outside), ("to_out_file", outside / "existing"), ("dangling", outside / "created"),
        ("dangling_rel", f"../{outside.name}/created_rel"), ("chain1", project / "chain2"),
        ("chain2", outside / "created_chain"), ("dangling2", outside / "created2"),
        ("dangling3", outside / "created3"), ("dangling_in", project / "made_via_link"),
        ("loop1", "loop2"), ("loop2", "loop1"),
    ]:
        os.symlink(to, project / link)
        box.own(project / link)
    os.symlink(project / "made_from_outside", outside / "link_in")
    box.own(outside / "link_in")
    # a pre-existing hard link from the project to a file outside
    box.file(outside / "linked", "linked outside")
    os.link(outside / "linked", project / "hardlink")


def test_open_family(box):
    conf, ctl, pair, _ = run_twin(box, BODY, setup)
    p, o, uid = pair.project, pair.outside, box.who.uid
    # the inside changes really happened, with umask 027 applied and the right owner
    for name, mode in [("a", 0o640), ("b", 0o600), ("c", 0o640), ("d", 0o750), ("rel", 0o640)]:
        st = os.stat(p / name)
        assert stat.S_IMODE(st.st_mode) == mode, name
        assert (st.st_uid, st.st_gid) == (uid, box.who.gid), name
    assert (p / "content").read_bytes() == b"hello"
    assert (p / "existing").read_bytes() == b""
    assert (p / "appended").read_bytes() == b"base+more"
    assert (p / "made_via_link").exists() and (p / "made_from_outside").exists()
    assert (p / "tmp_linked").read_bytes() == b"tmp"
    assert stat.S_IMODE(os.stat(p / "tmp_linked").st_mode) == 0o640
    assert os.stat(p / "tmp_linked").st_uid == uid
    assert not (p / "never").exists()
    for name in ("via_cwd", "via_tcwd", "via_pidcwd", "via_devfd", "via_procfd", "via_procfd2"):
        assert (p / name).exists(), name
    assert (p / "existing2").read_bytes() == b"secondvia fd 58"
    assert (p / "stdout_file").read_bytes() == b"to stdout file"
    assert conf["pipe_data"] == "through the pipe!"
    assert conf["x_read_data"] == "outside data"
    assert conf["efault_unterminated"] == "EFAULT" and conf["enametoolong"] == "ENAMETOOLONG"
    assert conf["rd_creat_existing_outside"] == "OK"
    # an O_PATH fd cannot be installed by the supervisor: openat2 says ENOSYS
    assert ctl["x_opath_openat2"] == "OK" and conf["x_opath_openat2"] == "ENOSYS"
    # nothing was created outside (run_twin compared the whole tree) and the
    # denials were reported
    assert b"denied open of " + str(o / "a").encode() in conf["_proc"].stderr
    assert conf["_proc"].returncode == 0
