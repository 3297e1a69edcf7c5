"""Issue 19.5 / 17.4 in the shell session: the mount API is refused to
confined processes and left to the kernel for unconfined ones. The
session's filter sends the calls to the supervisor, which decides by the
caller's judgement; a value check, so an unconfined caller gets CONTINUE.
(Landlock itself refuses mount(2), umount, pivot_root and move_mount to
every process of the session; open_tree, fsopen, fspick, fsconfig,
fsmount and mount_setattr it does not see.)"""

import re

from .conftest import SYSTEM_PYTHON, supervised

# unshare(CLONE_NEWUSER | CLONE_NEWNS), then open_tree(OPEN_TREE_CLONE) of
# the home: no uid map is needed (writing one is a /proc write the
# baseline refuses in a project).
PROBE = r'''
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
assert libc.unshare(0x10000000 | 0x20000) == 0
ok = libc.syscall(428, -100, os.fsencode(os.path.expanduser("~")), 1 | 0x8000) >= 0
print("mount-" + sys.argv[1] + "=" + ("OK" if ok else errno.errorcode[ctypes.get_errno()]))
'''


def test_mount_api_outside_and_inside_a_project(user, term_factory, home):
    script = user.write(home / "mount_probe.py", PROBE)
    term = term_factory("bash")
    supervised(term)

    def attempt(tag):
        text = term.run(f"{SYSTEM_PYTHON} {script} {tag}")
        found = re.search(rf"^mount-{tag}=(\w+)$", text, re.M)
        assert found, text
        return found.group(1)

    assert attempt("outside") == "OK"
    term.run("cd proj")
    assert attempt("inside") == "EPERM"
    term.run("cd ..")
    assert attempt("again") == "OK"


STEAL = r'''
import errno, fcntl, os, sys, termios
master, slave = os.openpty()
pid = os.fork()
if pid == 0:
    os.setsid()
    try:
        fcntl.ioctl(slave, termios.TIOCSCTTY, 1)
        print("steal-" + sys.argv[1] + "=OK", flush=True)
    except OSError as e:
        print("steal-" + sys.argv[1] + "=" + errno.errorcode[e.errno], flush=True)
    os._exit(0)
os.waitpid(pid, 0)
'''


def test_taking_a_terminal_outside_and_inside_a_project(user, term_factory, home):
    """TIOCSCTTY's stealing form: the kernel's business outside a project,
    refused inside (the session's filter sends it to the supervisor)."""
    script = user.write(home / "steal_probe.py", STEAL)
    term = term_factory("bash")
    supervised(term)

    def attempt(tag):
        text = term.run(f"{SYSTEM_PYTHON} {script} {tag}")
        found = re.search(rf"^steal-{tag}=(\w+)$", text, re.M)
        assert found, text
        return found.group(1)

    assert attempt("outside") == "OK"
    term.run("cd proj")
    assert attempt("inside") == "EPERM"
