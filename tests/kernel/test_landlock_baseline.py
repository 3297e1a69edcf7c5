"""The Landlock baseline made with the raw syscalls (kernel/landlock_syscalls.py):
the rights per ABI are landlockpy's, and on this kernel the ruleset confines
writes, TCP ports and signals. Each refusal has its control: the same call
before the ruleset works."""

from __future__ import annotations

import ctypes

import landlockpy
from landlockpy import _syscall as landlockpy_syscall

from conftest import SYSTEM_PYTHON
from peninsula.kernel import landlock_syscalls as ll


def test_rights_and_layouts_are_landlockpy_s():
    for abi in range(0, landlockpy.flags.LATEST_ABI + 2):
        assert ll.fs_rights_for_abi(abi) == int(landlockpy.fs_for_abi(abi)), abi
    assert ctypes.sizeof(ll.PathBeneathAttr) == ctypes.sizeof(landlockpy_syscall.PathBeneathAttr) == 12
    assert ctypes.sizeof(ll.NetPortAttr) == ctypes.sizeof(landlockpy_syscall.NetPortAttr) == 16
    assert ll.abi_version() == landlockpy.abi_version()


CONFINED = r"""
import errno, os, signal, socket, subprocess, sys
from peninsula.kernel import landlock
inside, outside = sys.argv[1:3]
other = subprocess.Popen(["sleep", "30"])  # a process outside the domain

def attempts():
    out = []
    for name, call in (("inside", lambda: open(os.path.join(inside, "f"), "w").close()),
                       ("outside", lambda: open(os.path.join(outside, "f"), "w").close()),
                       ("tcp", lambda: socket.create_connection(("127.0.0.1", 1), timeout=5)),
                       ("signal", lambda: os.kill(other.pid, 0))):
        try:
            call()
            out.append(f"{name}=ok")
        except OSError as err:
            out.append(f"{name}={errno.errorcode[err.errno]}")
    return " ".join(out)

print(attempts())
os.unlink(os.path.join(outside, "f"))
sys.stdout.flush()
child = os.fork()
if child == 0:  # confined in a child, so that this process can still stop `other`
    landlock.restrict_self((inside,), scoped=True, net=landlock.NetRules(connect=(9,)))
    print(attempts(), flush=True)
    os._exit(0)
os.waitpid(child, 0)
other.kill()
"""


def test_ruleset_confines_writes_ports_and_signals(who):
    inside, outside = who.mkdir(who.base / "inside"), who.mkdir(who.base / "outside")
    done = who.run([SYSTEM_PYTHON, "-c", CONFINED, inside, outside])
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.decode().splitlines()
    assert before == "inside=ok outside=ok tcp=ECONNREFUSED signal=ok"
    assert after == "inside=ok outside=EACCES tcp=EACCES signal=EPERM"
