"""The kernel's errno for paths through /proc (invariant 9), on both hot paths.

Each test is a twin: the same probe unconfined (or the untrapped lstat of
the same path inside the sandbox, under the same Landlock domain and
credentials) gives the kernel's answer, and the confined trapped call must
give the same one.
"""

from __future__ import annotations

import os

SELF_FD = r'''
import errno as E
closed = 47  # not open in either run
spellings = ["/proc/self/fd/%d", "//proc/self/fd/%d", "/proc/thread-self/fd/%d", "/proc/%d/fd/%%d" % os.getpid(),
             "/proc/%d/task/%d/fd/%%d" % (os.getpid(), os.getpid()), "/dev/fd/%d", "/proc/self/fd/%d/x"]
for sp in spellings:
    path = sp % closed
    key = sp.replace(str(os.getpid()), "PID")
    attempt("append " + key, sc, "open", path, os.O_WRONLY | os.O_APPEND, 0)
    attempt("create " + key, sc, "open", path, os.O_WRONLY | os.O_CREAT, 0o644)
    attempt("mkdir " + key, sc, "mkdir", path, 0o755)
    attempt("chmod " + key, sc, "chmod", path, 0o644)
done()
'''


def test_a_path_to_an_fd_not_open_is_enoent(box, hot_path):
    """/proc/self/fd/N for an N not open has no such entry (ENOENT); EBADF
    is the answer for a dirfd argument only."""
    control = box.probe(SELF_FD, confined=False)
    confined = box.probe(SELF_FD)
    assert control["append /proc/self/fd/%d"] == "ENOENT"  # the kernel's, measured
    diff = {k: (confined.get(k), v) for k, v in control.items() if not k.startswith("_") and confined.get(k) != v}
    assert not diff, diff
