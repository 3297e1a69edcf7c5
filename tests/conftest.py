"""Shared test fixtures: the code under test, as root and as a plain user.

Tests run peninsula the way users do: as a separate `python3 -m peninsula`
process. The package and its pure-Python dependencies are copied into a
world-readable directory so an unprivileged user can run them with the
system interpreter (the default python3 here may live in root's home).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"
# A worktree of its own may name its own test user, so that suites run side
# by side do not share one home.
TEST_USER = os.environ.get("PENINSULA_TEST_USER", "peninsula-test")
SCRATCH_ROOT = Path("/var/lib/peninsula-tests")
RUNTIME_PACKAGES = ("peninsula", "landlockpy", "pyseccomp", "tomlkit")
# Set by tests/test_sanitizer.py for the suites it runs: the compiled hot
# path built with ASan/UBSan replaces the normal one in the runtime copy,
# and every process runs with the sanitizer runtime (tests/sanitize.py).
SANITIZED_SO = os.environ.get("PENINSULA_TEST_SANITIZED_SO")
SANITIZER_REPORTS = os.environ.get("PENINSULA_TEST_SANITIZER_REPORTS")


def pytest_addoption(parser):
    parser.addoption("--stress", action="store_true", help="run long stress tests with bigger numbers")


@pytest.fixture(scope="session")
def stress(request) -> bool:
    return bool(request.config.getoption("--stress"))


@pytest.fixture(scope="session")
def runtime(tmp_path_factory) -> Path:
    """A world-readable copy of peninsula and its runtime dependencies."""
    # Not in /tmp, which every sandbox may write: peninsula protects its own
    # installation, and a protection inside a writable root costs run --fast.
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(SCRATCH_ROOT, 0o755)
    root = Path(tempfile.mkdtemp(prefix="rt-", dir=SCRATCH_ROOT))
    os.chmod(root, 0o755)
    for name in RUNTIME_PACKAGES:
        module = __import__(name)
        source = Path(module.__file__)
        if source.name == "__init__.py":
            shutil.copytree(source.parent, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / source.name)
    if SANITIZED_SO:
        from sanitize import SO_NAME, main_shim

        shutil.copy2(SANITIZED_SO, root / "peninsula" / "supervisor" / SO_NAME)
        main = root / "peninsula" / "__main__.py"
        main.write_text(main_shim(main.read_text(), SANITIZER_REPORTS))
    for path in root.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", TEST_USER], check=True)
        return pwd.getpwnam(TEST_USER)


@dataclass
class Runner:
    """Runs commands as one identity (root or the test user)."""

    name: str
    uid: int
    gid: int
    home: Path
    runtime: Path
    base: Path  # a scratch dir owned by this identity

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def env(self, extra: dict | None = None) -> dict:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "PYTHONPATH": str(self.runtime),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
        }
        if SANITIZED_SO:
            from sanitize import MARKER

            env[MARKER] = "1"
        env.update(extra or {})
        return env

    def prefix(self) -> list[str]:
        if self.is_root:
            return []
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--"]

    def run(self, argv: list[str], cwd=None, env=None, timeout=120, input=None) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.prefix() + [str(a) for a in argv],
            cwd=str(cwd or self.base),
            env=self.env(env),
            capture_output=True,
            timeout=timeout,
            input=input,
        )

    def peninsula(self, *args, cwd=None, env=None, timeout=120, input=None) -> subprocess.CompletedProcess:
        return self.run([SYSTEM_PYTHON, "-m", "peninsula", *args], cwd=cwd, env=env, timeout=timeout, input=input)

    def mkdir(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        return path

    def write(self, path: Path, data: bytes | str = b"") -> Path:
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chown(path, self.uid, self.gid)
        return path


def _runner(kind: str, runtime: Path, tmp: Path) -> Runner:
    if kind == "root":
        uid = gid = 0
        name, home = "root", Path(pwd.getpwuid(0).pw_dir)
    else:
        entry = _ensure_user()
        uid, gid, name, home = entry.pw_uid, entry.pw_gid, entry.pw_name, Path(entry.pw_dir)
    base = tmp / kind
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(tmp, 0o755)
    os.chown(base, uid, gid)
    return Runner(name, uid, gid, home, runtime, base)


@pytest.fixture
def scratch() -> Path:
    """A fresh directory every identity can reach (pytest's tmp_path is 0700),
    deliberately not under /tmp: the temp dirs are writable in every sandbox."""
    SCRATCH_ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(SCRATCH_ROOT, 0o755)
    path = Path(tempfile.mkdtemp(prefix="t-", dir=SCRATCH_ROOT))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["root", "user"])
def who(request, runtime, scratch) -> Runner:
    """Each test using this runs twice: as root and as an unprivileged user."""
    return _runner(request.param, runtime, scratch)


@pytest.fixture
def user(runtime, scratch) -> Runner:
    return _runner("user", runtime, scratch)


@pytest.fixture
def root(runtime, scratch) -> Runner:
    return _runner("root", runtime, scratch)
