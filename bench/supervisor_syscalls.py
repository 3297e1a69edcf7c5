"""The syscalls the supervisor makes per request it answers, by workload.

    .venv/bin/python bench/supervisor_syscalls.py [--workload tar,git,compileall,micro] [--dir DIR]

Runs each of run.py's workloads once as `peninsula run --verbose` under
`strace -c` without -f: only the supervisor's thread (the main thread of the
`peninsula run` process) is counted, not the command, not the watchdog and
reaper threads. The counts are exact (strace slows the supervisor, the counts
do not change), less those of `peninsula run -- true` (its start and exit);
divided by the requests the supervisor reports, they say
what answering one request costs in kernel entries, and which of them walk
a path (openat2, readlinkat, newfstatat, mkdirat...).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import run as benchrun  # noqa: E402


def strace_counts(text: str) -> dict[str, int]:
    """strace -c's table: {syscall: calls}."""
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(fields) >= 5 and fields[-1].isidentifier() and fields[0][0].isdigit() and fields[-1] != "total":
            counts[fields[-1]] = int(fields[3])
    return counts


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
        proc = subprocess.run(["strace", "-c", "-o", str(out_file), str(benchrun.PENINSULA), "run", "--verbose", "--quiet",
                               "--project", str(bench.project), "--"] + cmd, cwd=cwd, env=env, capture_output=True, text=True)
        return proc, benchrun.parse_answered(proc.stderr), strace_counts(out_file.read_text())

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
