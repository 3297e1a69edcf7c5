"""How much later an interactive shell is ready with the peninsula hook.

    .venv/bin/python bench/shell_start.py [--rounds N] [--shell bash|zsh]

Starts `SHELL -i` (stdin /dev/null, so it exits at once) in a scratch HOME
whose rc file is empty, then one whose rc file is only the hook line, N
times each, interleaved; prints the medians and the difference. The hooked
start includes everything a user waits for: `peninsula hook` in the rc, the
re-exec under the supervisor, the rc and `peninsula hook` again in the
supervised shell, its first prompt ping, and the session's teardown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

RC = {"bash": ".bashrc", "zsh": ".zshrc"}


def _start(shell: str, home: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PENINSULA_")}
    env["HOME"] = home
    t0 = time.perf_counter()
    subprocess.run([shell, "-i"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=env, cwd=home, check=False)
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--shell", choices=sorted(RC), default="bash")
    args = ap.parse_args()
    peninsula = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "peninsula"
    with tempfile.TemporaryDirectory() as plain, tempfile.TemporaryDirectory() as hooked:
        Path(plain, RC[args.shell]).write_text("")
        Path(hooked, RC[args.shell]).write_text(f'eval "$({peninsula} hook {args.shell})"\n')
        times: dict[str, list[float]] = {"plain": [], "hooked": []}
        for _ in range(args.rounds):
            times["plain"].append(_start(args.shell, plain))
            times["hooked"].append(_start(args.shell, hooked))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.shell} -i, median of {args.rounds}: without the hook {med['plain']:.1f} ms "
          f"(min {min(times['plain']):.1f}), with it {med['hooked']:.1f} ms (min {min(times['hooked']):.1f}): "
          f"{med['hooked'] - med['plain']:.1f} ms added (target <= 100 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
