"""Device nodes and terminals a confined process may open or make: the safe character devices and its own ptys.
"""

from __future__ import annotations

import os
import stat


def safe_device(info) -> bool:
    """True unless info is a block device or a character device other than
    the terminals and the null-like devices (1:3 null, 1:5 zero, 1:7 full,
    1:8 random, 1:9 urandom, 5:0 tty, 5:2 ptmx, 136-143 pts)."""
    if stat.S_ISBLK(info.st_mode):
        return False
    if not stat.S_ISCHR(info.st_mode):
        return True
    major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
    return (major == 1 and minor in (3, 5, 7, 8, 9)) or (major == 5 and minor in (0, 2)) or 136 <= major <= 143


TIOCSCTTY = 0x540E


PTS_MAJORS = range(136, 144)  # UNIX98_PTY_SLAVE_MAJOR and the 7 after it


PTMX = os.makedev(5, 2)


def is_pty(info) -> bool:
    return stat.S_ISCHR(info.st_mode) and os.major(info.st_rdev) in PTS_MAJORS


def _pty_index(rdev: int) -> int:
    return (os.major(rdev) - PTS_MAJORS[0]) * 256 + os.minor(rdev)


def own_terminal(req, info) -> bool:
    """Is the pty info names one of the thread's own: its controlling
    terminal (what /dev/tty opens anyway), a pty it holds open for writing
    (inherited, or opened with our consent), or one whose master it holds
    (made through /dev/ptmx, which only makes new ones)? Root may open
    every terminal of the machine; a confined process writes only those it
    already has. A read-only open never reaches us, so a slave held only
    for reading proves nothing."""
    with open(f"/proc/{req.tid}/stat", "rb") as handle:
        tty_nr = int(handle.read().rsplit(b")", 1)[1].split()[4])
    if os.makedev((tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)) == info.st_rdev:
        return True
    fds = f"/proc/{req.tid}/fd"
    try:
        names = os.listdir(fds)
    except OSError:
        return False  # not ours to look into (not dumpable): not shown to be its own
    for name in names:
        try:
            held = os.stat(f"{fds}/{name}")
            if not stat.S_ISCHR(held.st_mode):
                continue
            slave = (held.st_dev, held.st_rdev) == (info.st_dev, info.st_rdev)
            if not slave and held.st_rdev != PTMX:
                continue
            with open(f"/proc/{req.tid}/fdinfo/{name}", "rb") as handle:
                fields = dict(line.split(b":", 1) for line in handle if b":" in line)
            if slave and int(fields[b"flags"], 8) & os.O_ACCMODE != os.O_RDONLY:
                return True
            if not slave and int(fields.get(b"tty-index", b"-1")) == _pty_index(info.st_rdev):
                return True
        except OSError:
            continue  # closed meanwhile
    return False
