"""PTRACE_TRACEME under a parent that is peninsula itself would leave the
command stopped for ever at its next signal: refused. Under an ordinary
parent it is the kernel's business."""

SCRIPT = r'''
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(0, 0, 0, 0)
print("traceme", r, ctypes.get_errno(), flush=True)
if r == 0:
    signal.signal(signal.SIGUSR2, lambda *a: None)
    os.kill(os.getpid(), signal.SIGUSR2)  # a tracer must resume us now
print("still running", flush=True)
'''


def test_traceme_under_the_supervisor_is_refused(who):
    script = who.write(who.base / "traceme.py", SCRIPT)
    project = who.mkdir(who.base / "proj")
    direct = who.peninsula("run", "--", "/usr/bin/python3", script, cwd=project, timeout=60)
    assert direct.returncode == 0, direct.stderr
    assert b"traceme -1 1" in direct.stdout and b"still running" in direct.stdout
    assert b"its parent is peninsula" in direct.stderr
    # Under a real debugger-capable parent (strace) it is allowed to work.
    traced = who.peninsula("run", "--", "strace", "-qq", "-o", "/dev/null", "/usr/bin/python3", script,
                           cwd=project, timeout=60)
    assert b"still running" in traced.stdout, traced.stderr
