"""Time from starting an interactive shell on a pty to its first prompt.

    .venv/bin/python bench/first_prompt.py [--rounds N] [--shell bash|zsh|fish]

Each round starts SHELL -i on a fresh pty in a scratch HOME whose rc file
loads direnv's hook (the baseline: what a direnv user already waits for),
then one whose rc also loads the peninsula hook, interleaved. The clock
stops when the prompt's marker appears on the pty: that includes the hook,
the re-exec under the supervisor, the rc file again and the first prompt
ping. Prints the medians and the difference, and the CPU time the whole
process tree used from start to exit (less sensitive to a loaded machine
than the wall clock; the load average is printed too).
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

MARKER = "READY-7f3a> "
RC = {
    "bash": (".bashrc", 'eval "$(direnv hook bash)"\n{hook}PS1="READY-7f3a> "\n', 'eval "$({p} hook bash)"\n'),
    "zsh": (".zshrc", 'eval "$(direnv hook zsh)"\n{hook}PS1="READY-7f3a> "\n', 'eval "$({p} hook zsh)"\n'),
    "fish": (".config/fish/config.fish",
             "direnv hook fish | source\n{hook}set -g fish_greeting ''\nfunction fish_prompt; echo -n 'READY-7f3a> '; end\n",
             "{p} hook fish | source\n"),
}


def _start(shell: str, home: str, timeout: float = 10.0) -> tuple[float, float]:
    """(ms to the first prompt, CPU ms of the whole tree until it exited)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PENINSULA_")}
    env.update(HOME=home, TERM="xterm", XDG_CONFIG_HOME=os.path.join(home, ".config"))
    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(home)
        os.execvpe(shell, [shell, "-i"], env)
    seen = b""
    elapsed = float("nan")
    try:
        while time.perf_counter() - t0 < timeout:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            seen += chunk
            if MARKER.encode() in seen:
                elapsed = (time.perf_counter() - t0) * 1000
                break
        os.write(fd, b"exit\n")
        deadline = time.monotonic() + 5
        cpu = float("nan")
        while time.monotonic() < deadline:
            done, _, usage = os.wait4(pid, os.WNOHANG)
            if done:
                cpu = (usage.ru_utime + usage.ru_stime) * 1000
                break
            with_data, _, _ = select.select([fd], [], [], 0.1)
            if with_data:
                try:
                    os.read(fd, 65536)
                except OSError:
                    pass
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return elapsed, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--shell", choices=sorted(RC), default="bash")
    ap.add_argument("--peninsula", default=str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "peninsula"))
    args = ap.parse_args()
    rel, text, hook = RC[args.shell]
    homes = {}
    for kind in ("direnv", "hooked"):
        home = tempfile.mkdtemp(prefix=f"first-prompt-{kind}-")
        path = Path(home, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(hook=hook.format(p=args.peninsula) if kind == "hooked" else ""))
        homes[kind] = home
    times: dict[str, list[float]] = {k: [] for k in homes}
    cpu: dict[str, list[float]] = {k: [] for k in homes}
    try:
        for _ in range(args.rounds):
            for kind, home in homes.items():
                wall, used = _start(args.shell, home)
                times[kind].append(wall)
                cpu[kind].append(used)
    finally:
        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.shell}: first prompt on a pty, median of {args.rounds}: direnv alone {med['direnv']:.0f} ms, "
          f"with the peninsula hook {med['hooked']:.0f} ms: {med['hooked'] - med['direnv']:.0f} ms added "
          f"(all: {', '.join(f'{t:.0f}' for t in times['hooked'])}); CPU time of the tree, start to exit: "
          f"{statistics.median(cpu['direnv']):.0f} ms vs {statistics.median(cpu['hooked']):.0f} ms; "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
