"""Errno parity, proved with twin trees (issue 13, item 1).

The same list of raw syscalls, in many shapes (existing, missing, missing
parent, wrong type, dangling symlink, symlink loop, name and path too long,
relative, absolute, dirfd, AT_EMPTY_PATH, trailing slash), runs

- unconfined, as the plain user, against K: a tree owned by root (0755
  directories, 0644 files) that the kernel itself refuses to change;
- confined (`peninsula run`), as the plain user, against P: the same tree
  owned by the user, outside every writable root, which peninsula refuses.

Every case must give the same errno both ways: peninsula's refusal looks
exactly like a tree the kernel refuses. A case is logged as a denial
exactly when the kernel would have carried it out (the oracle: the same
case unconfined in a fresh user-owned tree of its own succeeds).

And inside the project, where the supervisor performs the calls, each case
gives what the kernel gives the same call unconfined (fresh trees again).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from .conftest import NR, compile_c, make_box, snapshot

PROBE = compile_c((Path(__file__).parent / "errno_probe.c").read_text(), "errno_probe")

O = os
O_TMPFILE = 0o20000000 | os.O_DIRECTORY
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = 0x100, 0x200, 0x400, 0x1000
RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
RESOLVE_NO_SYMLINKS, RESOLVE_BENEATH, RESOLVE_IN_ROOT = 0x04, 0x08, 0x10
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
LONG = "n" * 256
TOO_LONG = "d/" * 2100  # more than PATH_MAX
NEAR_LIMIT = "./" * 2040 + "file"  # under PATH_MAX: it resolves

# Every shape a path argument takes, relative to the tree (the probe's cwd).
SHAPES = [
    "file", "dir", "empty", "missing", "missing/x", "file/x", "link_file", "link_dir", "dangling", "loop",
    "fifo", "file/", "dir/", "missing/", "dangling/", "link_dir/", LONG, "dir/" + LONG, TOO_LONG, NEAR_LIMIT,
    ".", "..", "dir/.", "dir/..", "", "dir/inner", "dir/../file",
]
ABSOLUTE = ["file", "missing", "dir", "dir/inner"]
# Fewer, for the calls on an existing object (metadata, xattrs): the walk
# is the same code for all, the object's type is what differs.
OBJECT_SHAPES = ["file", "dir", "missing", "file/x", "link_file", "dangling", "loop", "fifo", "file/", "dir/",
                 LONG, TOO_LONG, "", "."]


def s(text: str) -> str:
    return "s:" + text


def shown(shape: str) -> str:
    """A shape as it appears in a case's name."""
    for long, label in ((TOO_LONG, "TOO_LONG"), (NEAR_LIMIT, "NEAR_LIMIT"), (LONG, "LONG")):
        shape = shape.replace(long, label)
    return repr(shape)


def paths():
    """Each shape as a path argument: relative, and some absolute."""
    yield from ((shape, s(shape)) for shape in SHAPES)
    yield from (("/" + shape, "a:" + shape) for shape in ABSOLUTE)


def object_paths():
    yield from ((shape, s(shape)) for shape in OBJECT_SHAPES)
    yield "/file", "a:file"


def dirfd_paths():
    """Shapes for the *at calls: from the tree's fd, from a file's fd, a bad fd."""
    for shape in ("file", "dir", "missing", "dangling", "link_file", "dir/", LONG, "", ".", "fifo"):
        yield "D:" + shape, "D", s(shape)
    yield "F:x", "f:file", s("x")
    yield "BAD:x", "i:999", s("x")
    yield "CWD:file", f"i:{AT_FDCWD}", s("file")
    yield "D:abs", "D", "a:missing"


def cases() -> list[tuple[str, int, list[str]]]:
    out: list[tuple[str, int, list[str]]] = []

    def add(name: str, nr: str, *args: str) -> None:
        for long, label in ((TOO_LONG, "TOO_LONG"), (NEAR_LIMIT, "NEAR_LIMIT"), (LONG, "LONG"), ("t" * 4200, "T4200")):
            name = name.replace(long, label)
        out.append((f"{nr}({name})", NR[nr], list(args)))

    open_flags = {
        "W": O.O_WRONLY, "RW": O.O_RDWR, "W|TRUNC": O.O_WRONLY | O.O_TRUNC, "R|TRUNC": O.O_RDONLY | O.O_TRUNC,
        "W|CREAT": O.O_WRONLY | O.O_CREAT, "RW|CREAT|EXCL": O.O_RDWR | O.O_CREAT | O.O_EXCL,
        "R|CREAT": O.O_CREAT, "W|NOFOLLOW": O.O_WRONLY | O.O_NOFOLLOW,
        "W|CREAT|NOFOLLOW": O.O_WRONLY | O.O_CREAT | O.O_NOFOLLOW, "W|DIRECTORY": O.O_WRONLY | O.O_DIRECTORY,
        "CREAT|DIRECTORY": O.O_CREAT | O.O_DIRECTORY, "TMPFILE|W": O_TMPFILE | O.O_WRONLY,
        "TMPFILE|R": O_TMPFILE, "W|NONBLOCK": O.O_WRONLY | O.O_NONBLOCK, "W|APPEND": O.O_WRONLY | O.O_APPEND,
        "W|NOATIME": O.O_WRONLY | O.O_NOATIME, "TMPFILE|W|CREAT": O_TMPFILE | O.O_WRONLY | O.O_CREAT,
    }
    for label, flags in open_flags.items():
        for shape, p in paths():
            if "fifo" in shape and not flags & O.O_NONBLOCK:
                continue  # a write open of a FIFO without a reader waits for one
            add(f"{shape!r},{label}", "open", p, f"i:{flags}", "i:420")
    for label in ("W", "W|CREAT", "RW|CREAT|EXCL", "W|DIRECTORY"):
        for shape, dirfd, p in dirfd_paths():
            if "fifo" in shape:
                continue
            add(f"{shape},{label}", "openat", dirfd, p, f"i:{open_flags[label]}", "i:420")
    for label in ("W", "W|CREAT", "RW|CREAT|EXCL", "TMPFILE|W"):
        for resolve in (0, RESOLVE_BENEATH, RESOLVE_NO_SYMLINKS, RESOLVE_IN_ROOT):
            mode = 0o644 if "CREAT" in label or "TMPFILE" in label else 0
            for shape in ("file", "missing", "dir", "dangling", "link_file", "../x", "dir/../new", "/abs", "file/"):
                p = "a:missing" if shape == "/abs" else s(shape)
                add(f"{shape},{label},resolve={resolve}", "openat2", "D", p, f"h:{open_flags[label]},{mode},{resolve}", "i:24")
    for shape, p in paths():
        if "fifo" in shape:
            continue
        add(repr(shape), "creat", p, "i:420")

    for shape, p in paths():
        add(repr(shape), "mkdir", p, "i:493")
    for shape, dirfd, p in dirfd_paths():
        add(shape, "mkdirat", dirfd, p, "i:493")

    mknod_modes = {
        "REG": stat.S_IFREG | 0o644, "FIFO": stat.S_IFIFO | 0o644, "CHR1:3": stat.S_IFCHR | 0o644,
        "DIR": stat.S_IFDIR | 0o755, "BADTYPE": 0o170000 | 0o644, "SOCK": stat.S_IFSOCK | 0o644, "0": 0o644,
        "CHR0:0": stat.S_IFCHR,
    }
    for label, mode in mknod_modes.items():
        dev = os.makedev(1, 3) if label == "CHR1:3" else 0
        for shape in ("file", "missing", "dir", "missing/x", "file/x", "dangling", "missing/", LONG, ".", ""):
            add(f"{shape!r},{label}", "mknod", s(shape), f"i:{mode}", f"i:{dev}")
    for shape, dirfd, p in dirfd_paths():
        add(shape, "mknodat", dirfd, p, f"i:{stat.S_IFIFO | 0o644}", "i:0")

    for shape, p in paths():
        add(repr(shape), "unlink", p)
        add(repr(shape), "rmdir", p)
    for flags in (0, AT_REMOVEDIR, 0x1):
        for shape, dirfd, p in dirfd_paths():
            add(f"{shape},{flags:#x}", "unlinkat", dirfd, p, f"i:{flags}")

    olds = ["file", "dir", "empty", "missing", "link_file", "dangling", "fifo", "file/", "dir/", "missing/x",
            "file/x", LONG, ".", "..", "", "dir/inner"]
    news = ["new", "file", "dir", "empty", "dir/inner", "missing/x", LONG, ".", "..", "file/", "new/", "dir/sub",
            "empty/sub", "link_file", "dangling", "fifo", ""]
    for old in olds:
        for new in news:
            add(f"{old!r}->{new!r}", "rename", s(old), s(new))
    for old, new in (("file", "/dev/shm/.peninsula-errno-x"), ("file", "x:own"), ("x:own", "new"),
                     ("x:own", "file"), ("dir/inner", "x:new"), ("dir", "dir/inner/x")):
        add(f"{old!r}->{new!r}", "rename", old if old.startswith("x:") else s(old), new if new.startswith("x:") else s(new))
    for flags in (RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT, RENAME_NOREPLACE | RENAME_EXCHANGE, 0x10):
        for old in ("file", "dir", "missing", "empty", "file/", "link_file"):
            for new in ("new", "file", "dir", "empty", "dir/inner", "new/", "file/", "."):
                add(f"{old!r}->{new!r},{flags:#x}", "renameat2", "D", s(old), "D", s(new), f"i:{flags}")
    for old, new in (("dir/inner", "empty"), ("file", "file"), ("link_file", "file"), ("x:own", "new")):
        add(f"{old!r}->{new!r}", "renameat", "D", old if old.startswith("x:") else s(old), "D", s(new))

    link_olds = ["file", "dir", "link_file", "dangling", "missing", "fifo", "file/", "dir/inner", LONG, ""]
    link_news = ["new", "file", "dir", "missing/x", LONG, "new/", ".", "dangling", ""]
    for old in link_olds:
        for new in link_news:
            add(f"{old!r}->{new!r}", "link", s(old), s(new))
    # Links into the side (in the project) each get a name of their own,
    # so that each is judged on its own (into_project).
    for old, new in (("file", "/dev/shm/.peninsula-errno-x"), ("file", "x:new"), ("x:own", "new"), ("x:own", "file")):
        new = f"x:new{len(out)}" if new == "x:new" else new
        add(f"{old!r}->{new!r}", "link", old if old.startswith("x:") else s(old), new if new.startswith("x:") else s(new))
    for flags in (0, AT_SYMLINK_FOLLOW, 0x1):
        for old in ("file", "link_file", "dangling", "dir", "missing"):
            for new in ("new", "file", "x:new"):
                new = f"x:new{len(out)}" if new == "x:new" else new
                add(f"{old!r}->{new!r},{flags:#x}", "linkat", "D", s(old), "D", new if new.startswith("x:") else s(new), f"i:{flags}")
    for fd_arg in ("f:file", "p:file", "p:link_file", "f:dir"):
        for new in ("new", "file", "x:new"):
            new = f"x:new{len(out)}" if new == "x:new" else new
            add(f"{fd_arg}->{new!r},EMPTY_PATH", "linkat", fd_arg, s(""), "D", new if new.startswith("x:") else s(new), f"i:{AT_EMPTY_PATH}")

    for text in ("file", "", "t" * 4200):
        for shape, p in paths():
            add(f"{text[:8]!r}->{shape!r}", "symlink", s(text), p)
    for shape, dirfd, p in dirfd_paths():
        add(shape, "symlinkat", s("file"), dirfd, p)

    for length in (0, -1):
        for shape, p in paths():
            add(f"{shape!r},{length}", "truncate", p, f"i:{length}")

    for mode in (0o644, 0o4755, 0o2755, 0o1777):
        for shape, p in paths() if mode == 0o644 else object_paths():
            add(f"{shape!r},{mode:o}", "chmod", p, f"i:{mode}")
    for shape, dirfd, p in dirfd_paths():
        add(shape, "fchmodat", dirfd, p, "i:384")
    for flags in (0, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, 0x1):
        for shape, dirfd, p in dirfd_paths():
            add(f"{shape},{flags:#x}", "fchmodat2", dirfd, p, "i:384", f"i:{flags}")
        for fd_arg in ("f:file", "p:file", "p:link_file", "f:dir"):
            add(f"{fd_arg},'',{flags:#x}", "fchmodat2", fd_arg, s(""), "i:384", f"i:{flags}")
    for fd_arg in ("f:file", "f:dir"):
        add(fd_arg, "fchmod", fd_arg, "i:384")

    owners = {"-1,-1": ("i:-1", "i:-1"), "me,-1": ("u", "i:-1"), "-1,mygroup": ("i:-1", "g"), "0,0": ("i:0", "i:0")}
    for label, (uid, gid) in owners.items():
        for shape, p in object_paths():
            add(f"{shape!r},{label}", "chown", p, uid, gid)
            add(f"{shape!r},{label}", "lchown", p, uid, gid)
        for flags in (0, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, 0x1) if label in ("me,-1", "0,0") else (0,):
            for shape, dirfd, p in dirfd_paths():
                add(f"{shape},{label},{flags:#x}", "fchownat", dirfd, p, uid, gid, f"i:{flags}")
        for fd_arg in ("f:file", "f:dir"):
            add(f"{fd_arg},{label}", "fchown", fd_arg, uid, gid)

    times = {
        "NULL": "N", "NOW,NOW": f"T:0,{UTIME_NOW},0,{UTIME_NOW}", "OMIT,OMIT": f"T:0,{UTIME_OMIT},0,{UTIME_OMIT}",
        "0,0": "T:0,0,0,0", "NOW,OMIT": f"T:0,{UTIME_NOW},0,{UTIME_OMIT}", "bad-nsec": "T:0,-5,0,0",
    }
    for label, t in times.items():
        for flags in (0, AT_SYMLINK_NOFOLLOW):
            for shape, p in object_paths():
                add(f"{shape!r},{label},{flags:#x}", "utimensat", f"i:{AT_FDCWD}", p, t, f"i:{flags}")
        for shape, dirfd, p in dirfd_paths():
            add(f"{shape},{label}", "utimensat", dirfd, p, t, "i:0")
        add(f"'file',{label},0x1", "utimensat", f"i:{AT_FDCWD}", s("file"), t, "i:1")
        for fd_arg in ("f:file", "f:dir"):
            add(f"{fd_arg},{label}", "utimensat", fd_arg, "N", t, "i:0")
            add(f"{fd_arg},'',{label},EMPTY_PATH", "utimensat", fd_arg, s(""), t, f"i:{AT_EMPTY_PATH}")
    for label, t in {"NULL": "N", "0,0": "V:0,0,0,0", "bad-usec": "V:0,2000000,0,0"}.items():
        for shape, p in object_paths():
            add(f"{shape!r},{label}", "utimes", p, t)
        for shape, dirfd, p in dirfd_paths():
            add(f"{shape},{label}", "futimesat", dirfd, p, t)
        add(f"f:file,NULL,{label}", "futimesat", "f:file", "N", t)
    for label, t in {"NULL": "N", "0,0": "U:0,0"}.items():
        for shape, p in object_paths():
            add(f"{shape!r},{label}", "utime", p, t)

    names = ["user.t", "trusted.t", "security.t", "foo.t", "", "user." + "x" * 260]
    for name in names:
        for flags in (0, 1, 2, 4) if name == "user.t" else (0,):  # XATTR_CREATE, XATTR_REPLACE, invalid
            for shape, p in object_paths():
                add(f"{shape!r},{name[:9]},{flags}", "setxattr", p, s(name), s("v"), "i:1", f"i:{flags}")
        for shape, p in object_paths():
            add(f"{shape!r},{name[:9]}", "lsetxattr", p, s(name), s("v"), "i:1", "i:0")
            add(f"{shape!r},{name[:9]}", "removexattr", p, s(name))
            add(f"{shape!r},{name[:9]}", "lremovexattr", p, s(name))
        add(f"'file',{name[:9]},big", "setxattr", s("file"), s(name), s("v"), "i:70000", "i:0")
        for fd_arg in ("f:file", "f:dir", "p:file"):
            add(f"{fd_arg},{name[:9]}", "fsetxattr", fd_arg, s(name), s("v"), "i:1", "i:0")
            add(f"{fd_arg},{name[:9]}", "fremovexattr", fd_arg, s(name))
        for flags in (0, AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH, 0x1) if name in ("user.t", "trusted.t") else ():
            for shape, dirfd, p in dirfd_paths():
                add(f"{shape},{name[:9]},{flags:#x}", "setxattrat", dirfd, p, f"i:{flags}", s(name), "X:0", "i:16")
                add(f"{shape},{name[:9]},{flags:#x}", "removexattrat", dirfd, p, f"i:{flags}", s(name))
    return out


def write_cases(path: Path, items) -> None:
    path.write_text("".join("\t".join([name.replace("\t", " ").replace(" ", "_"), str(nr), *args]) + "\n"
                            for name, nr, args in items))
    os.chmod(path, 0o644)


def results(proc) -> list[int]:
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return [int(line.rsplit(" ", 1)[1]) for line in proc.stdout.decode().splitlines()]


def errname(number: int) -> str:
    import errno

    return "OK" if number == 0 else errno.errorcode.get(number, str(number))


# Where a kernel-refused tree and a peninsula-refused one must differ: the
# kernel changes the inode's ctime (chown to -1,-1 changes nothing else),
# or a symlink's 0777 mode lets anyone touch its times. peninsula refuses
# both: they write outside the sandbox.
def kernel_writes_anyway(name: str) -> bool:
    return (name.startswith(("chown(", "lchown(", "fchownat(", "fchown(")) and ",-1,-1" in name) or (
        name.startswith("utimensat(") and ("NULL" in name or "NOW,NOW" in name) and "0x100" in name
        and any(link in name for link in ("'link_file'", "'link_dir'", "'dangling'", "'loop'"))
    )


def into_project(name: str) -> bool:
    """A link of a regular file (followed through a symlink or not) from
    the refused tree into the side, which is in the project: where the
    kernel would link it, peninsula answers EXDEV, logged (the kernel would
    have linked it) but not noticed (names.CROSS_BOUNDARY), where the kernel refusing the tree says EPERM."""
    if "'x:new" not in name:
        return False
    return name.startswith(("link('file'", "linkat('file'", "linkat(f:file", "linkat(p:file->")) or (
        name.startswith("linkat('link_file'") and name.endswith(f",{AT_SYMLINK_FOLLOW:#x})"))


# The kernel's own answers (K and U below) do not depend on the hot path:
# measured once per test session.
_NATIVE: dict[str, list[int]] = {}


def native(user, root, scratch, list_file) -> tuple[list[int], list[int]]:
    """(K, U): every case unconfined against the root-owned tree K, and
    each case unconfined in a user-owned tree of its own (U, the oracle of
    what the kernel does when nothing refuses)."""
    if not _NATIVE:
        # Each tree's parent is like it: ".." is the kernel's, or the user's.
        kernel = scratch / "KK" / "t"
        kernel.mkdir(parents=True)
        done = root.run([PROBE, "populate", kernel])
        assert done.returncode == 0, done.stderr
        side = user.mkdir(scratch / "kside")
        user.write(side / "own", "own\n")
        _NATIVE["kernel"] = results(user.run([PROBE, "shared", kernel, side, list_file], cwd=scratch))
        oracle, oracle_side = user.mkdir(scratch / "U"), user.mkdir(scratch / "Uside")
        _NATIVE["fresh"] = results(user.run([PROBE, "fresh", oracle, oracle_side, list_file], cwd=scratch, timeout=300))
        shutil.rmtree(oracle, ignore_errors=True)
    return _NATIVE["kernel"], _NATIVE["fresh"]


@pytest.fixture
def trees(user, root, scratch, hot_path):
    box = make_box(user, hot_path)
    user.mkdir(scratch / "PP")
    ours = user.mkdir(scratch / "PP" / "t")
    done = user.run([PROBE, "populate", ours])
    assert done.returncode == 0, done.stderr
    user.mkdir(box.project / "side")
    user.write(box.project / "side" / "own", "own\n")
    list_file = scratch / "cases.tsv"
    write_cases(list_file, cases())
    k, u = native(user, root, scratch, list_file)
    return box, ours, list_file, k, u


def test_refusals_give_the_kernels_errno(trees):
    """K (kernel refuses) and P (peninsula refuses): the same errno, case by
    case; only the cases the kernel would carry out are logged."""
    box, ours, list_file, k, u = trees
    items = cases()
    before = snapshot(ours)
    proc = box.run(PROBE, "shared", ours, box.project / "side", list_file, ours, cwd=box.project, timeout=300)
    p = results(proc)
    assert snapshot(ours) == before, "peninsula let something change in the refused tree"
    assert len(k) == len(p) == len(u) == len(items)

    logged: dict[int, list[dict]] = {}
    current = -1
    for line in box.log.read_text().splitlines():
        entry = json.loads(line)
        marker = os.path.basename(entry["path"])
        if entry["op"] == "mkdir" and marker.startswith(".m") and marker[2:].isdigit():
            current = int(marker[2:])
            continue
        logged.setdefault(current, []).append(entry)

    differ, wrong_log = [], []
    for index, (name, _, _) in enumerate(items):
        if name.startswith("open('fifo',W|NONBLOCK)"):
            # Whether a FIFO has a reader (else ENXIO) cannot be known
            # without opening it, which the reader would see: peninsula
            # counts the refusal as genuine. Only the errno is compared.
            assert k[index] == p[index], f"{name}: kernel={errname(k[index])} peninsula={errname(p[index])}"
            continue
        if kernel_writes_anyway(name) and k[index] == 0:
            assert p[index] != 0, f"{name}: peninsula let it through"
            continue
        if into_project(name) and u[index] == 0:
            if p[index] != errno.EXDEV or not logged.get(index):
                differ.append(f"{name}: want EXDEV and logged, peninsula={errname(p[index])}, logged {len(logged.get(index, []))}")
            continue
        if k[index] != p[index]:
            differ.append(f"{name}: kernel={errname(k[index])} peninsula={errname(p[index])}")
        genuine = u[index] == 0 and p[index] != 0
        if genuine != bool(logged.get(index)):
            wrong_log.append(f"{name}: kernel would {'do it' if u[index] == 0 else 'fail ' + errname(u[index])}, "
                             f"logged {len(logged.get(index, []))}")
    assert not list((box.project / "side").glob("new*"))
    assert any(into_project(name) and u[index] == 0 for index, (name, _, _) in enumerate(items))
    report = f"{len(items)} cases, {len(differ)} differ, {len(wrong_log)} wrongly logged or not"
    print(report)
    if differ or wrong_log:
        pytest.fail(report + "\n" + "\n".join(differ + wrong_log), pytrace=False)


def test_allowed_calls_give_the_kernels_errno(trees):
    """In the project the supervisor performs the calls: each case, in a
    fresh tree of its own, gives what it gives without peninsula (U)."""
    box, _, list_file, _, native_answers = trees
    items = cases()
    inside, inside_side = box.dir(box.project / "A"), box.dir(box.project / "Aside")
    confined = results(box.run(PROBE, "fresh", inside, inside_side, list_file, cwd=box.project, timeout=300))
    differ = []
    for index, (name, _, _) in enumerate(items):
        if confined[index] != native_answers[index] and not refused_inside(name):
            differ.append(f"{name}: kernel={errname(native_answers[index])} peninsula={errname(confined[index])}")
    report = f"{len(items)} cases, {len(differ)} differ"
    print(report)
    if differ:
        pytest.fail(report + "\n" + "\n".join(differ), pytrace=False)
    shutil.rmtree(inside, ignore_errors=True)


def refused_inside(name: str) -> bool:
    """What peninsula refuses even in the project: set-user-ID and
    set-group-ID programs (a way to run as their owner later)."""
    return name.startswith("chmod(") and (",4755" in name or ",2755" in name)
