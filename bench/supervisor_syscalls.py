"""The syscalls the supervisor makes per request it answers, by workload.

    .venv/bin/python bench/supervisor_syscalls.py [--workload tar,git,compileall,micro] [--dir DIR]

Runs each of run.py's workloads once as `peninsula run --verbose` under
`strace -f` and counts the syscalls of the threads that received seccomp
notifications (the supervisor's), not the command's, not the watchdog's. The counts are exact (strace slows the supervisor, the counts
do not change), less those of `peninsula run -- true` (its start and exit);
divided by the requests the supervisor reports, they say
what answering one request costs in kernel entries, and which of them walk
a path (openat2, readlinkat, newfstatat, mkdirat...).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import run as benchrun  # noqa: E402


def supervisor_counts(path: Path) -> dict[str, int]:
    """{syscall: calls} of the threads that received seccomp notifications, from `strace -f -o`."""
    by_pid: dict[str, dict[str, int]] = {}
    supervisors = set()
    with open(path, errors="replace") as fh:
        for line in fh:
            pid, _, rest = line.partition(" ")
            rest = rest.lstrip()
            if rest.startswith("<...") or "(" not in rest:
                continue
            name = rest.split("(", 1)[0]
            calls = by_pid.setdefault(pid, {})
            calls[name] = calls.get(name, 0) + 1
            if name == "ioctl" and ("SECCOMP_IOCTL_NOTIF_RECV" in rest or "0xc0502100" in rest):
                supervisors.add(pid)
    out: dict[str, int] = {}
    for pid in supervisors:
        for name, n in by_pid[pid].items():
            out[name] = out.get(name, 0) + n
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="tar,git,compileall,micro")
    ap.add_argument("--dir", default=benchrun.DEFAULT_DIR)
    args = ap.parse_args(argv)
    root = Path(args.dir)
    benchrun.prepare_inputs(root)
    bench = benchrun.Bench(root, argparse.Namespace(quick=True))
    bench.runs = bench.project / f"profile-runs-syscalls-{time.strftime('%Y%m%d-%H%M%S')}"
    for name in ("tree", "py"):
        if not (bench.project / name).exists():
            raise SystemExit(f"{bench.project / name} is missing: run bench/run.py once first (it lays the project out)")
    out_file = root / "supervisor-strace.txt"

    def traced(cmd, cwd, env):
        proc = subprocess.run(["strace", "-f", "-qq", "-e", "signal=none", "-o", str(out_file), str(benchrun.PENINSULA), "run", "--verbose", "--quiet",
                               "--project", str(bench.project), "--"] + cmd, cwd=cwd, env=env, capture_output=True, text=True)
        return proc, benchrun.parse_answered(proc.stderr), supervisor_counts(out_file)

    # The supervisor's own start and exit (Python's imports, the filter...), to subtract.
    _, base_answered, base = traced(["true"], str(bench.project), bench.base_env())
    base_requests = base_answered.get("compiled", 0) + base_answered.get("python", 0)
    for w in args.workload.split(","):
        cmd, cwd, env = bench.workload(w, "syscalls")
        proc, answered, counts = traced(cmd, cwd, env)
        if proc.returncode != 0 or "error" in answered:
            print(f"{w}: exited {proc.returncode}: {proc.stderr[-1000:]}")
            continue
        counts = {k: n - base.get(k, 0) for k, n in counts.items()}
        requests = answered["compiled"] + answered["python"] - base_requests
        top = sorted(counts.items(), key=lambda kv: -kv[1])
        per = ", ".join(f"{name} {n / requests:.2f}" for name, n in top if n / requests >= 0.05)
        print(f"{w}: {requests} requests ({answered['compiled']} compiled, {answered['python']} Python); "
              f"supervisor syscalls per request {sum(counts.values()) / requests:.1f}: {per}")
    out_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
