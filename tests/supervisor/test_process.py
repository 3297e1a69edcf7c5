"""Tamper-proofing: a confined process cannot ptrace or signal the
supervisor, the peninsula caller or any process outside the sandbox; it
cannot push keystrokes into its terminal (TIOCSTI); io_uring is not there.
Each refusal is shown to be possible without peninsula."""

import json
import os
import signal
import subprocess

from .conftest import SYSTEM_PYTHON, on_pty

BODY = r'''
import signal, time
OUTSIDE_PID = int(sys.argv[3])
ATTACH, SEIZE, DETACH, INTERRUPT, PEEK = 16, 0x4206, 17, 0x4207, 2

def ptrace(req, pid):
    sc("ptrace", req, pid, 0, 0)

def attach_detach(req, pid):
    ptrace(req, pid)
    try:
        os.waitpid(pid, os.__dict__.get("WALL", 0x40000000)) if req == ATTACH else None
    finally:
        try:
            ptrace(DETACH, pid)
        except OSError:
            pass

def stat_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()

def vm_write(pid):
    buf = ctypes.create_string_buffer(8)
    local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
    remote = (ctypes.c_void_p * 2)(8, 8)  # an unmapped address: EFAULT once allowed
    r = _libc.syscall(311, pid, local, 1, remote, 1, 0)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

parent = os.getppid()
grandparent = int(stat_of(parent)[1])
RESULTS["x_parent_cmdline"] = open("/proc/%d/cmdline" % parent, "rb").read().replace(b"\0", b" ").decode()
RESULTS["x_grandparent_cmdline"] = open("/proc/%d/cmdline" % grandparent, "rb").read().replace(b"\0", b" ").decode()

# another process of the same user, started outside the sandbox
attempt("out_kill0_outside", os.kill, OUTSIDE_PID, 0)
attempt("out_kill_outside", os.kill, OUTSIDE_PID, signal.SIGCONT)
attempt("out_ptrace_attach_outside", attach_detach, ATTACH, OUTSIDE_PID)
attempt("out_ptrace_seize_outside", attach_detach, SEIZE, OUTSIDE_PID)
attempt("x_vm_write_outside", vm_write, OUTSIDE_PID)
# the supervisor (our parent) and the peninsula caller (grandparent)
for who, pid in (("parent", parent), ("grandparent", grandparent)):
    attempt("x_kill0_" + who, os.kill, pid, 0)
    attempt("x_kill_" + who, os.kill, pid, signal.SIGCONT)
    attempt("x_ptrace_attach_" + who, attach_detach, ATTACH, pid)
    attempt("x_ptrace_seize_" + who, attach_detach, SEIZE, pid)
    attempt("x_vm_write_" + who, vm_write, pid)
    attempt("x_pidfd_signal_" + who, lambda p: signal.pidfd_send_signal(os.pidfd_open(p), signal.SIGCONT), pid)
# our own child: tracing and signalling it still work
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
attempt("in_ptrace_seize_child", ptrace, SEIZE, child)
attempt("in_ptrace_interrupt_child", ptrace, INTERRUPT, child)
os.waitpid(child, 0x40000000)
attempt("in_ptrace_detach_child", ptrace, DETACH, child)
attempt("in_ptrace_attach_child", attach_detach, ATTACH, child)
attempt("in_kill_child", os.kill, child, signal.SIGKILL)
os.waitpid(child, 0)
# a child can be traced through PTRACE_TRACEME too
child = os.fork()
if child == 0:
    try:
        sc("ptrace", 0, 0, 0, 0)
        os._exit(0)
    except OSError:
        os._exit(3)
RESULTS["in_traceme"] = "OK" if os.waitpid(child, 0)[1] == 0 else "EPERM"
# pidfd_getfd: our child's fds are ours to take, an outside process's are not
def getfd(pid, fd):
    pidfd = os.pidfd_open(pid)
    got = sc("pidfd_getfd", pidfd, fd, 0)
    os.close(got)
    os.close(pidfd)
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
attempt("in_pidfd_getfd_child", getfd, child, 1)
os.kill(child, signal.SIGKILL)
os.waitpid(child, 0)
attempt("out_pidfd_getfd_outside", getfd, OUTSIDE_PID, 1)
attempt("x_pidfd_getfd_parent", getfd, parent, 1)
# io_uring would bypass the filter
params = ctypes.create_string_buffer(120)
attempt("x_io_uring_setup", sc, "io_uring_setup", 4, params)
done()
'''


def test_cannot_reach_processes_outside(box):
    outside = subprocess.Popen(box.who.prefix() + ["sleep", "120"])
    try:
        results = {}
        for confined in (False, True):
            results[confined] = box.probe(BODY, box.project, box.outside, outside.pid, confined=confined)
        control, conf = results[False], results[True]
        for key in ("out_kill0_outside", "out_kill_outside", "out_ptrace_attach_outside", "out_ptrace_seize_outside",
                    "out_pidfd_getfd_outside"):
            assert control[key] == "OK", (key, control[key])
            assert conf[key] == "EPERM", (key, conf[key])
        assert control["x_vm_write_outside"] == "EFAULT" and conf["x_vm_write_outside"] == "EPERM"
        assert "peninsula" in conf["x_parent_cmdline"] and "peninsula" in conf["x_grandparent_cmdline"]
        for who in ("parent", "grandparent"):
            for op in ("kill0", "kill", "ptrace_attach", "ptrace_seize", "vm_write", "pidfd_signal"):
                assert conf[f"x_{op}_{who}"] == "EPERM", (op, who, conf[f"x_{op}_{who}"])
        for key in ("in_ptrace_seize_child", "in_ptrace_interrupt_child", "in_ptrace_detach_child",
                    "in_ptrace_attach_child", "in_kill_child", "in_traceme", "in_pidfd_getfd_child"):
            assert conf[key] == control[key] == "OK", (key, control[key], conf[key])
        assert conf["x_pidfd_getfd_parent"] == "EPERM"
        assert control["x_io_uring_setup"] == "OK" and conf["x_io_uring_setup"] == "ENOSYS"
        assert outside.poll() is None  # still alive, never stopped
        assert conf["_proc"].returncode == 0
    finally:
        outside.kill()
        outside.wait()


TIOCSTI_BODY = r'''
import fcntl, termios, select
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
attr = termios.tcgetattr(0)
attr[3] &= ~(termios.ICANON | termios.ECHO)
termios.tcsetattr(0, termios.TCSANOW, attr)
attempt("tiocsti", fcntl.ioctl, 0, TIOCSTI, b"Z")
def _ioctl_high():
    c = ctypes.c_char(b"Y")
    r = _libc.syscall(16, 0, ctypes.c_ulong(TIOCSTI | (1 << 32)), ctypes.byref(c))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
attempt("tiocsti_high_bits", _ioctl_high)
ready, _, _ = select.select([0], [], [], 0.5)
RESULTS["x_injected"] = os.read(0, 10).decode() if ready else ""
done()
'''


def test_no_keystroke_injection(box):
    """TIOCSTI pushes input into the terminal: works on this kernel without
    peninsula (dev.tty.legacy_tiocsti=1), refused inside."""
    with open("/proc/sys/dev/tty/legacy_tiocsti") as handle:
        assert handle.read().strip() == "1"
    script = box.script(TIOCSTI_BODY)
    results = []
    for confined in (False, True):
        argv = [SYSTEM_PYTHON, "-m", "peninsula", "run", "--project", box.project, "--log", box.log, "--"] if confined else []
        code, out = on_pty(box, argv + [SYSTEM_PYTHON, script], timeout=30)
        lines = [l for l in out.decode(errors="replace").splitlines() if l.startswith("RESULT ")]
        assert code == 0 and lines, out
        results.append(json.loads(lines[-1][7:]))
    control, conf = results
    assert control["tiocsti"] == control["tiocsti_high_bits"] == "OK"
    assert control["x_injected"] == "ZY"
    assert conf["tiocsti"] == conf["tiocsti_high_bits"] == "EPERM"
    assert conf["x_injected"] == ""


ROOT_ONLY = r'''
# each of these is a way for root around a file-system sandbox; the calls
# are made so that they change nothing even where they succeed
attempt("init_module", sc_nr, 175, 0, 0, ctypes.c_char_p(b""))
attempt("finit_module", sc_nr, 313, -1, ctypes.c_char_p(b""), 0)
attempt("delete_module", sc_nr, 176, ctypes.c_char_p(b"peninsula_no_such_module"), 0x800)
attempt("kexec_load", sc_nr, 246, 0, 0, 0, 0x7FFF0000)  # bad flags: nothing unloaded
attempt("kexec_file_load", sc_nr, 320, -1, -1, 0, 0, 0)
attempt("iopl", sc_nr, 172, 0)
attempt("ioperm", sc_nr, 173, 0x80, 1, 0)
attempt("bpf", sc_nr, 321, 5, 0, 0)            # BPF_PROG_LOAD with no attr
attempt("acct", sc_nr, 163, 0)                 # switch accounting off (it is off)
attempt("swapoff", sc_nr, 168, ctypes.c_char_p(b"/nonexistent-swap"))
attempt("settimeofday", sc_nr, 164, 0, 0)      # no time, no zone: a no-op
attempt("reboot", sc_nr, 169, 0, 0, 0, 0)      # bad magic: EINVAL at most
attempt("quotactl", sc_nr, 179, 0, 0, 0, 0)
# mounting over a directory would change what every path means
os.makedirs("/tmp/peninsula-mnt-%d" % os.getpid(), exist_ok=True)
target_dir = ("/tmp/peninsula-mnt-%d" % os.getpid()).encode()
if attempt("mount", sc_nr, 165, ctypes.c_char_p(b"none"), ctypes.c_char_p(target_dir), ctypes.c_char_p(b"tmpfs"), 0, 0) == "OK":
    sc_nr(166, ctypes.c_char_p(target_dir), 0)
os.rmdir(target_dir)
done()
'''


def test_root_cannot_reach_around_the_sandbox(box):
    """Kernel modules, kexec, raw I/O ports, BPF, accounting files, swap,
    the clock, reboot and quotas: refused with EPERM inside (a plain user
    gets EPERM anyway), while root without peninsula gets past the
    permission check (another errno, or success)."""
    body = ROOT_ONLY.replace("sc_nr", "raw")
    body = "def raw(nr, *args):\n    NR['_'] = nr\n    return sc('_', *args)\n" + body
    control = box.probe(body, confined=False)
    conf = box.probe(body)
    for key in ("init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "iopl",
                "ioperm", "bpf", "acct", "swapoff", "settimeofday", "reboot", "quotactl", "mount"):
        assert conf[key] == "EPERM", (key, conf[key])
        if box.who.is_root:
            assert control[key] != "EPERM", (key, control[key])
