"""Paths that name the target's own objects: /proc/self/..., /dev/fd/N,
/dev/stdout, /dev/tty; FIFOs that block; and magic links through symlinks.
They must mean the target's objects (never the supervisor's), and a FIFO
open must not stall the supervisor."""

import os

from .conftest import SYSTEM_PYTHON, on_pty, run_twin

BODY = r'''
import threading, time
P, O = sys.argv[1], sys.argv[2]
C = os.O_CREAT | os.O_WRONLY
f = os.open(P + "/file", os.O_RDWR)
os.dup2(f, 40)
# relative paths that go through /proc and /dev
os.chdir("/proc")
attempt("in_rel_proc_self_fd", sc, "open", "self/fd/40", os.O_WRONLY)
os.chdir("/dev")
attempt("in_rel_dev_fd", sc, "open", "fd/40", os.O_WRONLY)
os.chdir(P)
# symlinks inside the project to /dev/stdout and /proc/self/fd/N (log -> /dev/stdout)
attempt("in_symlink_to_dev_fd", sc, "open", P + "/to_fd40", os.O_WRONLY | os.O_APPEND)
attempt("in_symlink_to_proc_cwd", sc, "open", P + "/to_cwd/via_link_cwd", C, 0o644)
ro = os.open(O + "/existing", os.O_RDONLY)
os.dup2(ro, 41)
attempt("out_symlink_to_dev_fd_outside", sc, "open", P + "/to_fd41", os.O_WRONLY)
# odd spellings of the same magic paths
attempt("in_double_slash_dev_fd", sc, "open", "//dev/fd/40", os.O_WRONLY)
attempt("in_dot_proc_self", sc, "open", "/proc/./self/fd/40", os.O_WRONLY)
attempt("out_double_slash_outside", sc, "open", "/dev//fd/41", os.O_WRONLY)
# another process's fd table is not ours to use: its fd 40 is not our fd 40
attempt("in_task_fd", sc, "open", "/proc/self/task/%d/fd/40" % os.getpid(), os.O_WRONLY)

# a FIFO open waits for the other end without stalling the supervisor
os.mkfifo(P + "/fifo", 0o600)
got = {}
def writer():
    t0 = time.monotonic()
    try:
        fd = os.open(P + "/fifo", os.O_WRONLY)
        os.write(fd, b"through the fifo")
        os.close(fd)
        got["writer"] = "OK"
    except OSError as e:
        got["writer"] = errno.errorcode[e.errno]
th = threading.Thread(target=writer)
th.start()
time.sleep(0.3)
t0 = time.monotonic()
for i in range(50):
    os.mkdir(P + "/while_blocked_%d" % i)
RESULTS["x_mkdirs_while_fifo_blocked"] = time.monotonic() - t0
RESULTS["x_writer_still_blocked"] = th.is_alive()
rfd = os.open(P + "/fifo", os.O_RDONLY)
th.join(10)
RESULTS["x_fifo_data"] = os.read(rfd, 100).decode()
RESULTS["x_writer"] = got.get("writer")
attempt("in_fifo_nonblock_no_reader", sc, "open", P + "/fifo", os.O_WRONLY | os.O_NONBLOCK)

# a signal during a blocking FIFO open: SA_RESTART restarts it, else EINTR
os.close(rfd)
import signal
fired = []
signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
signal.siginterrupt(signal.SIGALRM, False)      # SA_RESTART
signal.setitimer(signal.ITIMER_REAL, 0.3)
def late_reader():
    time.sleep(1.5)
    got["late"] = os.open(P + "/fifo", os.O_RDONLY)
th = threading.Thread(target=late_reader)
th.start()
attempt("in_fifo_restarted_after_signal", sc, "open", P + "/fifo", os.O_WRONLY)
th.join()
os.close(got["late"])
RESULTS["x_alarm_fired"] = len(fired)
signal.siginterrupt(signal.SIGALRM, True)       # no SA_RESTART
signal.setitimer(signal.ITIMER_REAL, 0.3)
attempt("in_fifo_interrupted", sc, "open", P + "/fifo", os.O_WRONLY)
attempt("in_fifo_rdwr", sc, "open", P + "/fifo", os.O_RDWR)
done()
'''


def setup(box, project, outside):
    box.file(project / "file", "")
    box.file(outside / "existing", "outside")
    for link, to in [("to_fd40", "/dev/fd/40"), ("to_cwd", "/proc/self/cwd"), ("to_fd41", "/proc/self/fd/41")]:
        os.symlink(to, project / link)
        box.own(project / link)


def test_magic_paths_and_fifos(box):
    conf, ctl, pair, _ = run_twin(box, BODY, setup)
    assert conf["x_writer"] == "OK" and conf["x_fifo_data"] == "through the fifo"
    assert conf["x_writer_still_blocked"] is True
    assert conf["x_mkdirs_while_fifo_blocked"] < 5
    assert conf["in_fifo_interrupted"] == "EINTR" and conf["in_fifo_restarted_after_signal"] == "OK"
    assert conf["x_alarm_fired"] == ctl["x_alarm_fired"] == 1
    assert (pair.project / "via_link_cwd").exists()


TTY_BODY = r'''
fd = os.open("/dev/tty", os.O_WRONLY)
os.write(fd, b"written to /dev/tty\n")
st = os.fstat(fd)
RESULTS["x_rdev"] = st.st_rdev
RESULTS["x_same_as_stdin"] = os.fstat(0).st_rdev == st.st_rdev
os.close(fd)
attempt("tty_rdwr", sc, "openat2", AT_FDCWD, "/dev/tty", how(os.O_RDWR), 24)
attempt("tty_rdonly_openat2", sc, "openat2", AT_FDCWD, "/dev/tty", how(os.O_RDONLY), 24)
RESULTS["x_rdonly_same"] = os.fstat(os.open("/dev/tty", os.O_RDONLY)).st_rdev == st.st_rdev
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.setsid()  # a new session has no controlling terminal
    try:
        os.open("/dev/tty", os.O_WRONLY)
        os.write(w, b"OK")
    except OSError as e:
        os.write(w, errno.errorcode[e.errno].encode())
    os._exit(0)
os.waitpid(child, 0)
RESULTS["tty_after_setsid"] = os.read(r, 100).decode()
done()
'''


def test_dev_tty_is_the_targets_terminal(box):
    """/dev/tty opened for writing is the sandboxed process's own terminal
    (here a pty the test made), not the supervisor's; a process without
    one gets ENXIO, as without peninsula."""
    script = box.script(TTY_BODY)
    results = []
    for confined in (False, True):
        argv = [SYSTEM_PYTHON, "-m", "peninsula", "run", "--project", box.project, "--log", box.log, "--"] if confined else []
        code, out = on_pty(box, argv + [SYSTEM_PYTHON, script])
        assert code == 0, out
        assert b"written to /dev/tty" in out, out
        line = [l for l in out.decode(errors="replace").splitlines() if l.startswith("RESULT ")]
        assert line, out
        import json
        results.append(json.loads(line[-1][7:]))
    control, confined = results
    for key in ("x_rdev", "x_same_as_stdin", "tty_rdwr", "tty_rdonly_openat2", "x_rdonly_same", "tty_after_setsid"):
        assert confined[key] == control[key], (key, control, confined)
    assert control["tty_after_setsid"] == "ENXIO"
