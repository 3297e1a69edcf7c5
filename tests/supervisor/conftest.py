"""Helpers for the engine tests: a project and an outside directory per
identity, confined Python probes, and small C helpers compiled at test time.

A probe is a Python script run with the system interpreter under
`peninsula run`. It records one result per attempted operation ("OK" or
the errno name) and prints them as one JSON line, so one sandbox run can
try many syscalls and the test asserts on the whole table.
"""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cbuild import compile_c  # noqa: F401  (re-exported to the tests)

SYSTEM_PYTHON = "/usr/bin/python3"

# x86_64 syscall numbers, so every probe calls the syscall it names.
NR = dict(
    open=2, creat=85, mkdir=83, mknod=133, unlink=87, rmdir=84, rename=82, link=86,
    symlink=88, truncate=76, chmod=90, fchmod=91, chown=92, fchown=93, lchown=94,
    utime=132, utimes=235, futimesat=261, openat=257, mkdirat=258, mknodat=259,
    fchownat=260, unlinkat=263, renameat=264, linkat=265, symlinkat=266, fchmodat=268,
    utimensat=280, renameat2=316, openat2=437, fchmodat2=452, setxattr=188,
    lsetxattr=189, fsetxattr=190, removexattr=197, lremovexattr=198, fremovexattr=199,
    setxattrat=463, removexattrat=466, io_uring_setup=425, ptrace=101, kill=62, pidfd_getfd=438,
)

PRELUDE = r'''
import ctypes, errno, json, os, stat, struct, sys
NR = %(nr)r
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
RESULTS = {}
AT_FDCWD = -100

def _arg(a):
    if isinstance(a, str):
        a = os.fsencode(a)
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    if isinstance(a, int):
        return ctypes.c_long(a)
    return a

def sc(name, *args):
    """The raw syscall; OSError on failure, like the os module."""
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(NR[name]), *[_arg(a) for a in args])
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r

def attempt(name, fn, *args):
    try:
        value = fn(*args)
        if isinstance(value, int) and fn is sc and args and args[0] in ("open", "openat", "creat", "openat2"):
            os.close(value)
        RESULTS[name] = "OK"
    except OSError as e:
        RESULTS[name] = errno.errorcode.get(e.errno, str(e.errno))
    return RESULTS[name]

def how(flags, mode=0, resolve=0):
    return ctypes.create_string_buffer(struct.pack("=QQQ", flags, mode, resolve), 24)

def done(**extra):
    RESULTS.update(extra)
    sys.stdout.flush()
    print("RESULT " + json.dumps(RESULTS), flush=True)
''' % {"nr": NR}


@dataclass
class Box:
    """One identity's project and outside directory, and ways to run code
    confined to the project."""

    who: object
    project: Path
    outside: Path
    log: Path
    counter: int = 0
    # The supervisor's environment: which hot path serves the requests.
    env: dict = field(default_factory=dict)

    @property
    def base(self) -> Path:
        return self.who.base

    def script(self, body: str, name: str | None = None) -> Path:
        self.counter += 1
        path = self.base / (name or f"probe{self.counter}.py")
        path.write_text(PRELUDE + "\n" + body)
        os.chmod(path, 0o644)
        return path

    def run(self, *argv, cwd=None, options=(), env=None, timeout=120) -> subprocess.CompletedProcess:
        """`peninsula run` of argv with the project as the project."""
        return self.who.peninsula(
            "run", "--project", self.project, "--log", self.log, *options, "--", *argv,
            cwd=cwd or self.project, env={**self.env, **(env or {})}, timeout=timeout,
        )

    def probe(self, body: str, *args, cwd=None, options=(), env=None, timeout=120, confined=True, prefix=()) -> dict:
        """Run a probe script (confined unless told) and return its results."""
        path = self.script(body)
        argv = [*prefix, SYSTEM_PYTHON, path, *[str(a) for a in args]]
        if confined:
            proc = self.run(*argv, cwd=cwd, options=options, env=env, timeout=timeout)
        else:
            proc = self.who.run(argv, cwd=cwd or self.project, env=env, timeout=timeout)
        return parse(proc)

    def own(self, path: Path) -> Path:
        os.chown(path, self.who.uid, self.who.gid, follow_symlinks=False)
        return path

    def file(self, path: Path, data: bytes | str = b"", mode: int = 0o644) -> Path:
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(path, mode)
        return self.own(path)

    def dir(self, path: Path, mode: int = 0o755) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
        return self.own(path)


def parse(proc: subprocess.CompletedProcess) -> dict:
    for line in reversed(proc.stdout.decode("utf-8", "replace").splitlines()):
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            result["_proc"] = proc
            return result
    raise AssertionError(f"probe printed no result: rc={proc.returncode}\nstdout={proc.stdout[-3000:]!r}\nstderr={proc.stderr[-3000:]!r}")


def make_box(who, hot_path: str) -> Box:
    project = who.mkdir(who.base / "proj")
    outside = who.mkdir(who.base / "outside")
    env = {"PENINSULA_PURE_PYTHON": "1"} if hot_path == "python" else {}
    return Box(who, project, outside, who.base / "denials.jsonl", env=env)


@pytest.fixture(params=["compiled", "python"])
def hot_path(request, runtime) -> str:
    """Every engine test runs against both hot paths: the compiled one
    (peninsula/supervisor/_fastpath_c/, which hands refusals and rare cases to Python)
    and pure Python. The compiled one must have been built: setup.sh
    installs a C compiler, so a missing extension is a failure here."""
    if request.param == "compiled":
        built = list((runtime / "peninsula" / "supervisor").glob("_fastpath*.so"))
        assert built, "peninsula/supervisor/_fastpath_c/ was not built (pip install -e . with gcc and python3-dev)"
    return request.param


@pytest.fixture
def root_box(root, hot_path) -> Box:
    return make_box(root, hot_path)


@pytest.fixture
def box(who, hot_path) -> Box:
    return make_box(who, hot_path)


def listing(path: Path) -> list[str]:
    """Every name beneath path, for before/after comparisons."""
    out = []
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            out.append(os.path.relpath(os.path.join(root, name), path))
    return sorted(out)


def snapshot(path: Path) -> dict:
    """Names, modes, owners, sizes, times and contents beneath path."""
    out = {}
    for rel in [""] + listing(path):
        p = path / rel if rel else path
        st = os.lstat(p)
        entry = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
        if stat.S_ISREG(st.st_mode):
            entry += (p.read_bytes(),)
        elif stat.S_ISLNK(st.st_mode):
            entry += (os.readlink(p),)
        try:
            entry += (tuple(sorted((n, os.getxattr(p, n, follow_symlinks=False)) for n in os.listxattr(p, follow_symlinks=False))),)
        except OSError:
            pass
        out[rel] = entry
    return out


@dataclass
class Pair:
    project: Path
    outside: Path


def twin(box: Box, setup) -> tuple[Pair, Pair]:
    """Two identical project/outside pairs: one for the confined run, one
    for the same probe run without peninsula (the control)."""
    confined = Pair(box.project, box.outside)
    control = Pair(box.dir(box.base / "ctl-proj"), box.dir(box.base / "ctl-outside"))
    for pair in (confined, control):
        setup(box, pair.project, pair.outside)
    return confined, control


def compare(confined: dict, control: dict, denied_errno: str = "EACCES", denied_by_key: dict | None = None) -> None:
    """Keys starting with out_ must work without peninsula and be refused
    with denied_errno under it (or the errno denied_by_key names: what a
    tree owned by another user gives, see peninsula/supervisor/handlers/kernelorder.py); every
    other key must behave the same."""
    problems = []
    for key in control:
        if key.startswith(("_", "x_")):
            continue
        if key.startswith("out_"):
            want = (denied_by_key or {}).get(key, denied_errno)
            if control[key] != "OK" or confined.get(key) != want:
                problems.append(f"{key}: control={control[key]} confined={confined.get(key)} (want OK/{want})")
        elif confined.get(key) != control[key]:
            problems.append(f"{key}: control={control[key]} confined={confined.get(key)}")
    assert not problems, "\n".join(problems) + "\nstderr: " + confined["_proc"].stderr.decode(errors="replace")[-2000:]


def run_twin(box: Box, body: str, setup, denied_errno: str = "EACCES", denied_by_key: dict | None = None, **kw):
    """Set up twins, run body both ways (argv: project outside), compare.
    Returns (confined results, control results, confined pair, control pair)."""
    conf_pair, ctl_pair = twin(box, setup)
    before = snapshot(conf_pair.outside)
    control = box.probe(body, ctl_pair.project, ctl_pair.outside, cwd=ctl_pair.project, confined=False, **kw)
    confined = box.probe(body, conf_pair.project, conf_pair.outside, cwd=conf_pair.project, **kw)
    compare(confined, control, denied_errno, denied_by_key)
    if os.environ.get("PENINSULA_SHOW"):  # see every result: PENINSULA_SHOW=1 pytest -s
        print({k: v for k, v in confined.items() if not k.startswith("_")})
    assert snapshot(conf_pair.outside) == before, "something outside the project changed"
    return confined, control, conf_pair, ctl_pair


def on_pty(box, argv, timeout=60):
    """Run argv as the identity with a fresh pty as its controlling terminal;
    returns (exit status, everything written to the terminal)."""
    master, slave = os.openpty()
    cmd = box.who.prefix() + ["setsid", "--ctty", *[str(a) for a in argv]]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=box.project,
                            env=box.who.env(), start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    os.close(master)
    return proc.returncode, out


