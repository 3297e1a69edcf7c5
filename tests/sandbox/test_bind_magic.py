"""bind() through the process's own /proc/self/fd/N however spelled: the
kernel binds in the directory behind the process's fd N, and so must the
supervisor (it once bound the program's string in a thread of its own,
where /proc/self is the supervisor: ENOTDIR)."""

from __future__ import annotations

import os
import stat
import textwrap

from .helpers import PY

# argv: directory to open, the spellings to bind ("{fd}" replaced by the
# directory's fd number); prints "<spelling> ok" or "<spelling> <ERRNO>".
BINDER = textwrap.dedent("""
    import errno, os, socket, sys
    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
    os.symlink("/proc/self/fd/%d" % fd, "link")
    for i, spelling in enumerate(sys.argv[2:]):
        path = spelling.replace("{fd}", str(fd)) + "/s%d" % i
        try:
            socket.socket(socket.AF_UNIX).bind(path)
            print(spelling, "ok")
        except OSError as err:
            print(spelling, errno.errorcode[err.errno])
    os.unlink("link")
""")

SPELLINGS = ["/proc/self/fd/{fd}", "//proc/self/fd/{fd}", "/proc//self/fd/{fd}", "/./proc/self/fd/{fd}",
             "/dev/fd/{fd}", "link"]


def test_binds_through_own_fd_as_the_kernel(who):
    proj = who.mkdir(who.base / "proj")
    outputs = []
    for confined in (False, True):
        where = who.mkdir(proj / ("confined" if confined else "plain"))
        argv = [PY, "-c", BINDER, where, *SPELLINGS]
        proc = who.peninsula("run", "--write", proj, "--", *argv, cwd=proj) if confined else who.run(argv, cwd=proj)
        assert proc.returncode == 0, proc
        outputs.append(proc.stdout.decode().splitlines())
        made = sorted(os.listdir(where))
        assert made == sorted(f"s{i}" for i in range(len(SPELLINGS))), (confined, made, proc)
        assert all(stat.S_ISSOCK(os.lstat(where / name).st_mode) for name in made)
    plain, confined = outputs
    assert plain == [f"{s} ok" for s in SPELLINGS]
    assert confined == plain
