"""--limit-nproc for root: a pids cgroup around the command.

The kernel does not apply RLIMIT_NPROC to root (nor to a holder of
CAP_SYS_RESOURCE or CAP_SYS_ADMIN), so for root the limit is a pids
cgroup of its own: pids.max tasks (processes and threads) in the command
and everything it starts. The cgroup is made beneath the caller's own
pids cgroup (cgroup v1's pids hierarchy, or cgroup v2 where the pids
controller is enabled for children), its cgroup.procs opened before the
supervisor restricts itself, and the command writes itself into it just
before exec; the caller removes it when the run is over. Where no such
cgroup can be made, `peninsula run` refuses, saying why: a limit that is
accepted must bind.
"""

from __future__ import annotations

import contextlib
import os
import time


class PidsLimitError(Exception):
    """No pids cgroup can be made; the message says why."""


CAP_SYS_ADMIN, CAP_SYS_RESOURCE = 21, 24


def rlimit_nproc_ignored() -> bool:
    """Whether the kernel would let this process's command fork past
    RLIMIT_NPROC: real uid 0, or CAP_SYS_RESOURCE / CAP_SYS_ADMIN."""
    if os.getuid() == 0:
        return True
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
                return bool(caps & (1 << CAP_SYS_ADMIN | 1 << CAP_SYS_RESOURCE))
    return False


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, filesystem type, super options) of every cgroup mount."""
    out = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                point = fields[4].replace("\\040", " ")
                out.append((point, tail[0], set(tail[2].split(","))))
    return out


def _own_paths() -> dict[str, str]:
    """controller (or "" for cgroup v2) -> this process's cgroup path."""
    out = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                out[name] = path
    return out


def parent_dir() -> str:
    """The directory beneath which a pids cgroup of ours can be made."""
    own = _own_paths()
    reasons = []
    for point, kind, options in _mounts():
        if kind == "cgroup" and "pids" in options and "pids" in own:
            return os.path.join(point, own["pids"].lstrip("/"))
        if kind == "cgroup2" and "" in own:
            here = os.path.join(point, own[""].lstrip("/"))
            try:
                with open(os.path.join(here, "cgroup.subtree_control")) as handle:
                    enabled = handle.read().split()
            except OSError as err:
                reasons.append(f"{here}: {err.strerror}")
                continue
            if "pids" in enabled:
                return here
            reasons.append(f"the pids controller is not enabled for children of {here}")
    raise PidsLimitError("; ".join(reasons) or "no pids cgroup hierarchy is mounted")


class PidsCgroup:
    """A pids cgroup holding at most `limit` tasks; procs_fd joins it."""

    def __init__(self, limit: int):
        base = parent_dir()
        try:
            self.path = os.path.join(base, f"peninsula-run-{os.getpid()}-{time.monotonic_ns()}")
            os.mkdir(self.path, 0o755)
        except OSError as err:
            raise PidsLimitError(f"cannot create a pids cgroup beneath {base}: {err.strerror}") from None
        try:
            with open(os.path.join(self.path, "pids.max"), "w") as handle:
                handle.write(str(limit))
            self.procs_fd = os.open(os.path.join(self.path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
        except OSError as err:
            self.remove()
            raise PidsLimitError(f"cannot set up the pids cgroup {self.path}: {err.strerror}") from None

    def close_fd(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.procs_fd)

    def remove(self) -> None:
        """Remove the (by now empty) cgroup; tasks that have just exited
        may still be counted for a moment."""
        for _ in range(200):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.005)


def join(procs_fd: int) -> None:
    """Move the calling process into the cgroup (before exec)."""
    os.write(procs_fd, b"0")
