"""Helpers for the reliability tests: confined runs with timeouts on
everything, the supervisor's pid and memory, C helpers compiled at test
time, and snapshots of what must not change.

Layout per identity (under who.base, never under /tmp: the temp dirs are
writable in every sandbox):

    base/proj       the project (writable when confined)
    base/outside    owned by the identity, so writable without peninsula
    base/denials.jsonl
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cbuild import compile_c  # noqa: F401  (re-exported to the tests)

SYSTEM_PYTHON = "/usr/bin/python3"


def snapshot(path: Path, skip: tuple[str, ...] = ()) -> dict:
    """Every name beneath path (path itself included) with its type, mode,
    owner, link count, size, mtime, ctime and contents or link text. Any
    write, chmod, chown, link or rename changes at least one of these."""
    out = {}
    path = Path(path)
    for root, dirs, files in os.walk(path):
        rel_root = os.path.relpath(root, path)
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(rel_root, d)) not in skip]
        names = [""] if root == str(path) else []
        for name in names + dirs + files:
            full = os.path.join(root, name) if name else root
            rel = os.path.normpath(os.path.relpath(full, path))
            if rel in skip:
                continue
            st = os.lstat(full)
            entry = [st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as handle:
                    entry.append(hashlib.sha256(handle.read()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(full))
            out[rel] = tuple(entry)
    return out


def diff(before: dict, after: dict) -> list[str]:
    changes = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            changes.append(f"{key}: {before.get(key)} -> {after.get(key)}")
    return changes


def vmrss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def threads_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def children_of(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                out += [int(x) for x in handle.read().split()]
    except OSError:
        pass
    return out


def proc_state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()[0].decode()


class RssSampler:
    """Samples a process's VmRSS every few ms in a thread."""

    def __init__(self, pid: int, every: float = 0.02):
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            rss = vmrss_kb(self.pid)
            if rss is None:
                if self.samples:
                    return
            else:
                self.samples.append(rss)
            time.sleep(self._every)

    def stop(self) -> "RssSampler":
        self._stop.set()
        self._thread.join(5)
        return self

    @property
    def max(self) -> int:
        return max(self.samples, default=0)

    def early_late(self) -> tuple[int, int]:
        """Median of the first and of the last tenth of the samples."""
        n = max(1, len(self.samples) // 10)
        first, last = sorted(self.samples[:n]), sorted(self.samples[-n:])
        return first[len(first) // 2], last[len(last) // 2]


# Figures every test adds to; printed at the end of the session (pytest -s
# or the terminal summary) so a run states what it checked.
# (supervisor_crashes: a supervisor that died when it should not have;
# handler_exceptions: tracebacks the loop caught, answering EPERM.)
FIGURES = {"writes_checked": 0, "denials_checked": 0, "escapes": 0, "supervisor_crashes": 0,
           "handler_exceptions": 0, "hangs": 0, "max_supervisor_rss_kb": 0, "fuzz_calls": 0}


def figure(name: str, value: int, how: str = "add") -> None:
    if how == "max":
        FIGURES[name] = max(FIGURES[name], value)
    else:
        FIGURES[name] += value


def pytest_terminal_summary(terminalreporter):
    if any(FIGURES.values()):
        terminalreporter.write_line("reliability figures: " + json.dumps(FIGURES))


class Started:
    """A `peninsula run` in flight, in a session of its own so a timeout can
    kill everything it started."""

    def __init__(self, popen: subprocess.Popen, out: Path, err: Path):
        self.popen = popen
        self.pid = popen.pid
        self._out, self._err = out, err
        self.sampler: RssSampler | None = None

    def supervisor(self, timeout: float = 20) -> int:
        """The supervisor: the caller's child that is itself `peninsula`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # (ctypes.util.find_library vforks ldconfig: a child that
            # briefly has the caller's cmdline; the supervisor is the child
            # that has children of its own, the command among them.)
            for child in children_of(self.pid):
                try:
                    with open(f"/proc/{child}/cmdline", "rb") as handle:
                        if b"peninsula" in handle.read() and children_of(child):
                            return child
                except OSError:
                    pass
            if self.popen.poll() is not None:
                break
            time.sleep(0.005)
        raise AssertionError("no supervisor process found")

    def sample_rss(self) -> RssSampler:
        self.sampler = RssSampler(self.supervisor())
        return self.sampler

    def wait(self, timeout: float) -> subprocess.CompletedProcess:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            FIGURES["hangs"] += 1
            self.kill()
            raise AssertionError(f"peninsula run hung for {timeout}s; stderr: {self.stderr[-3000:]!r}")
        finally:
            if self.sampler is not None:
                self.sampler.stop()
                FIGURES["max_supervisor_rss_kb"] = max(FIGURES["max_supervisor_rss_kb"], self.sampler.max)
        return subprocess.CompletedProcess(self.popen.args, self.popen.returncode, self.stdout, self.stderr)

    @property
    def stdout(self) -> bytes:
        return self._out.read_bytes()

    @property
    def stderr(self) -> bytes:
        return self._err.read_bytes()

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(30)


@dataclass
class Layout:
    who: object
    project: Path
    outside: Path
    log: Path
    tmp: Path
    count: list = field(default_factory=lambda: [0])

    @property
    def base(self) -> Path:
        return self.who.base

    def file(self, path: Path, data: bytes | str = b"", mode: int = 0o644) -> Path:
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        os.chmod(path, mode)
        os.chown(path, self.who.uid, self.who.gid)
        return path

    def dir(self, path: Path, mode: int = 0o755) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
        os.chown(path, self.who.uid, self.who.gid)
        return path

    def script(self, body: str, name: str) -> Path:
        path = self.base / name
        path.write_text(body)
        os.chmod(path, 0o644)
        return path

    def argv(self, command, options=(), verbose: bool = True, project: Path | None = None) -> list[str]:
        extra = ["-v"] if verbose else []
        return self.who.prefix() + [
            SYSTEM_PYTHON, "-m", "peninsula", "run", *extra, "--project", str(project or self.project),
            "--log", str(self.log), *[str(o) for o in options], "--", *[str(a) for a in command],
        ]

    def start(self, command, options=(), cwd=None, env=None, verbose: bool = True, project=None,
              stdin=subprocess.DEVNULL) -> Started:
        self.count[0] += 1
        out = self.tmp / f"out{self.count[0]}"
        err = self.tmp / f"err{self.count[0]}"
        with open(out, "wb") as o, open(err, "wb") as e:
            popen = subprocess.Popen(
                self.argv(command, options, verbose, project), stdin=stdin, stdout=o, stderr=e,
                cwd=str(cwd or project or self.project), env=self.who.env(env), start_new_session=True,
            )
        return Started(popen, out, err)

    def run(self, command, options=(), timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        return self.start(command, options, **kw).wait(timeout)

    def plain(self, command, timeout: float = 120, cwd=None, env=None) -> subprocess.CompletedProcess:
        """The same command without peninsula (the control)."""
        return self.who.run([str(a) for a in command], cwd=cwd or self.project, env=env, timeout=timeout)


def exceptions(text: str) -> dict[str, int]:
    """Unique tracebacks in text: 'innermost frame: exception' -> count."""
    found: dict[str, int] = {}
    frame = None
    inside = False
    for line in text.splitlines():
        if line.startswith("Traceback (most recent call last)"):
            inside, frame = True, None
        elif inside and line.startswith("  File "):
            frame = line.strip()
        elif inside and line and not line.startswith(" "):
            key = f"{frame}: {line.strip()}"
            found[key] = found.get(key, 0) + 1
            inside = False
    return found


def no_traceback(proc, known: tuple[str, ...] = ()) -> None:
    """No traceback on stderr (the run had -v). Tracebacks whose exception
    line contains one of the known strings make the test an expected
    failure (a reported bug), as long as there is no other kind."""
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode == 123 or "the supervisor died" in err:
        FIGURES["supervisor_crashes"] += 1
    found = known_tracebacks(proc, known)
    if found:
        pytest.xfail("known bug: " + "; ".join(found))


def known_tracebacks(proc, known: tuple[str, ...]) -> list[str]:
    """Fail on any traceback on stderr unless it is one of the known
    kinds; return the known ones found."""
    err = proc.stderr.decode("utf-8", "replace")
    if "Traceback" in err:
        unique = exceptions(err)
        FIGURES["handler_exceptions"] += sum(unique.values())
        if known and all(any(k in key for k in known) for key in unique):
            return list(unique)
        raise AssertionError("exceptions reached the supervisor's loop (innermost frame: exception x count):\n"
                             + "\n".join(f"  {k} x{v}" for k, v in unique.items()) + "\n--- stderr tail:\n" + err[-3000:])
    return []


@pytest.fixture
def lay(who, tmp_path) -> Layout:
    return _layout(who, tmp_path)


@pytest.fixture
def lay_root(root, tmp_path) -> Layout:
    return _layout(root, tmp_path)


@pytest.fixture
def lay_user(user, tmp_path) -> Layout:
    return _layout(user, tmp_path)


def _layout(who, tmp_path) -> Layout:
    project = who.mkdir(who.base / "proj")
    outside = who.mkdir(who.base / "outside")
    tmp = tmp_path / who.name
    tmp.mkdir(exist_ok=True)
    return Layout(who, project, outside, who.base / "denials.jsonl", tmp)


def denials(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
