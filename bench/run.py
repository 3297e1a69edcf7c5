"""peninsula's benchmark: the same workloads, plain and under each sandbox.

    .venv/bin/python bench/run.py [--quick] [--rounds N] [--idle LOAD] [--dir DIR] [--keep]

Generates deterministic workloads on real disk (never tmpfs), runs each one
in every mode round by round (the modes' order rotates each round, so a
noisy minute hits all of them), and reports medians, min-max and ratios to
the unsandboxed run. Writes bench/results/latest.md, latest.json and
ratios.png (matplotlib). Modes:

  plain      the command itself
  landlock   bench/landlock_only.py: peninsula's Landlock baseline (same
             writable roots as `peninsula run`), no seccomp, no supervisor
  landlock_w the same with only the write rights handled (a proposal, measured)
  floor      bench/notify_floor.c: write-intent opens sent to a C supervisor
             that answers CONTINUE at once: the user-notify round-trip floor
  peninsula  .venv/bin/peninsula run --quiet --project DIR -- CMD
  bwrap      bwrap --ro-bind / / --dev /dev --bind DIR DIR --bind /tmp /tmp
             --bind /var/tmp /var/tmp -- CMD   (when bubblewrap is installed)
  sandlock   sandlock run -w DIR ... -r / -- CMD: its binary, else its Python SDK
             through bench/sandlock_run.py (`.venv/bin/pip install sandlock`)
  shell      a supervised `bash -i` on a pty standing in DIR (bench/shell_session.py),
             each workload typed at its prompt and timed by bash itself

--idle LOAD starts each round only once the 1-minute load average is under
LOAD (up to --idle-timeout), and the report says which rounds never got quiet;
the load at each round's start and end is reported either way.

Disk hygiene: this file system is ext4 without a journal, where the kernel
avoids reusing inodes freed in the last 60 s (360 s while their inode table
block is dirty) by scanning past them on every create. Deleting one run's
output before the next makes the next run's creates up to 40x slower. So no
run deletes anything: each run writes into a fresh directory, everything is
removed at the end, and a new bench first probes the cost of a create and
waits (up to 7 min) until it is back to normal.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
VENV_PY = REPO / ".venv" / "bin" / "python"
PENINSULA = REPO / ".venv" / "bin" / "peninsula"
SYSTEM_PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
DEFAULT_DIR = "/var/lib/peninsula-bench"

GEN_VERSION = 2
TREE_FILES = 4062
TREE_BYTES = 117_000_000
TREE_DIRS = 320
PY_FILES = 800
CREATE_PROBE_LIMIT_US = 60.0

# Targets (issue 15), for the peninsula column and the shell session's; a
# read-only open is held against Landlock alone, start-up applies to
# `peninsula run` only (a shell's own start is bench/first_prompt.py's).
TARGETS = {
    "tar": ("ratio", 1.3),
    "git": ("ratio", 1.1),
    "compileall": ("ratio", 1.05),
    "micro.read": ("ratio_landlock", 1.05),
    "micro.write": ("added_us", 20.0),
    "start": ("abs_ms", 50.0),
}
TARGET_MODES = ("peninsula", "shell")


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# -- workload generation ------------------------------------------------------

_WORDS = (
    "int char void static return if else for while struct const unsigned size_t "
    "buffer length count index value result error status config options parse read "
    "write open close handle request reply path name node tree list map key data "
    "self def class import from None True False yield async await lambda pass raise"
).split()


def _text_pool(rng: random.Random, size: int) -> bytes:
    out, total = [], 0
    while total < size:
        indent = "    " * rng.randrange(4)
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(2, 12)))
        line = f"{indent}{words}({rng.randrange(1000)});\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]


def tree_spec(seed: int = 4062) -> list[tuple[str, int, str]]:
    """(relative path, size, kind) for the source tree: nested dirs, mixed sizes."""
    rng = random.Random(seed)
    dirs = ["src"]
    depth = {"src": 0}
    for i in range(TREE_DIRS - 1):
        parent = rng.choice(dirs)
        if depth[parent] >= 6:
            parent = "src"
        name = f"{parent}/{rng.choice(_WORDS)}_{i}"
        dirs.append(name)
        depth[name] = depth[parent] + 1
    raw = [rng.lognormvariate(8.6, 1.7) for _ in range(TREE_FILES)]
    raw = [min(r, 6_000_000) for r in raw]
    scale = TREE_BYTES / sum(raw)
    sizes = [max(1, int(r * scale)) for r in raw]
    sizes[0] += TREE_BYTES - sum(sizes)
    spec = []
    for i, size in enumerate(sizes):
        binary = size > 262_144 or rng.random() < 0.2
        ext = rng.choice((".bin", ".png", ".o", ".gz")) if binary else rng.choice((".c", ".h", ".py", ".md", ".txt"))
        spec.append((f"{rng.choice(dirs)}/f{i:04d}{ext}", size, "binary" if binary else "text"))
    return spec


def write_tar(spec, tar_path: Path) -> dict:
    rng = random.Random(117)
    pool = _text_pool(rng, 4 << 20)
    tmp = tar_path.with_suffix(".tmp")
    dirs = sorted({str(Path(p).parent) for p, _, _ in spec} | {"src"})
    all_dirs = set()
    for d in dirs:
        parts = d.split("/")
        for k in range(1, len(parts) + 1):
            all_dirs.add("/".join(parts[:k]))
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for d in sorted(all_dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
        for path, size, kind in sorted(spec):
            if kind == "binary":
                data = rng.randbytes(size)
            else:
                header = f"/* {path} */\n".encode()
                body = size - len(header)
                if body <= 0:
                    data = header[:size]
                else:
                    off = rng.randrange(len(pool) - min(body, len(pool)) + 1)
                    data = header + (pool[off:] + pool)[:body]
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, tar_path)
    digest = hashlib.sha256(tar_path.read_bytes()).hexdigest()
    return {"files": len(spec), "dirs": len(all_dirs), "bytes": sum(s for _, s, _ in spec), "tar_sha256": digest}


def write_python_tree(root: Path, count: int = PY_FILES, seed: int = 800) -> dict:
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        pkg = root / f"pkg{i // 40:02d}"
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").touch()
        lines = [f'"""Generated module {i}."""', "import os", "import re", ""]
        for c in range(rng.randrange(2, 5)):
            lines += [f"class Thing{c}:", f"    limit = {rng.randrange(100)}", "",
                      "    def __init__(self, value, items=None):",
                      "        self.value = value", "        self.items = list(items or [])", ""]
            for m in range(rng.randrange(3, 7)):
                a, b = rng.randrange(1, 50), rng.randrange(1, 50)
                lines += [f"    def method_{m}(self, x, y={a}):",
                          f"        total = 0",
                          f"        for k in range(x):",
                          f"            if k % {b} == 0 and k > y:",
                          f"                total += k * self.value - {a}",
                          f"            elif k in self.items:",
                          f"                total -= len(str(k)) + {b}",
                          f"        return {{'total': total, 'name': '{rng.choice(_WORDS)}', 'id': {i}}}", ""]
        for f in range(rng.randrange(10, 24)):
            w = rng.choice(_WORDS)
            lines += [f"def func_{f}_{w}(path, flags=0, *args, **kwargs):",
                      f"    match = re.match(r'^{w}[a-z]+(\\d+)$', path)",
                      f"    parts = [p.strip() for p in path.split('/') if p and p != '{w}']",
                      f"    if match and flags & {1 << rng.randrange(8)}:",
                      f"        return os.path.join(*parts, match.group(1))",
                      f"    data = {{k: v for k, v in zip(parts, range({rng.randrange(2, 90)}))}}",
                      f"    try:",
                      f"        value = data[parts[0]] + {rng.randrange(1000)}",
                      f"    except (KeyError, IndexError) as err:",
                      f"        raise ValueError(f'bad path {{path}}: {{err}}') from None",
                      f"    return value, args, kwargs", ""]
        text = "\n".join(lines) + "\n"
        (pkg / f"mod{i:03d}.py").write_text(text)
        total += len(text)
    return {"files": count, "bytes": total}


def prepare_inputs(root: Path) -> dict:
    inputs = root / "inputs"
    manifest_path = inputs / "manifest.json"
    micro_src = BENCH / "microbench.c"
    micro_src_hash = hashlib.sha256(micro_src.read_bytes()).hexdigest()
    manifest = {}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    if manifest.get("version") != GEN_VERSION:
        log(f"generating workloads into {inputs} (deterministic; once)")
        if inputs.exists():
            shutil.rmtree(inputs)
        inputs.mkdir(parents=True)
        t0 = time.monotonic()
        manifest = {"version": GEN_VERSION}
        manifest["tree"] = write_tar(tree_spec(), inputs / "src.tar")
        subprocess.run(["tar", "xf", str(inputs / "src.tar"), "-C", str(inputs)], check=True)
        (inputs / "src").rename(inputs / "tree")
        manifest["python"] = write_python_tree(inputs / "py")
        manifest["generated_in_s"] = round(time.monotonic() - t0, 1)
    floor_src = BENCH / "notify_floor.c"
    floor_hash = hashlib.sha256(floor_src.read_bytes()).hexdigest()
    if manifest.get("notify_floor_src") != floor_hash or not (inputs / "notify_floor").exists():
        if shutil.which("gcc"):
            subprocess.run(["gcc", "-O2", "-Wall", "-o", str(inputs / "notify_floor"), str(floor_src)], check=True)
            manifest["notify_floor_src"] = floor_hash
    if manifest.get("microbench_src") != micro_src_hash or not (inputs / "microbench").exists():
        if not shutil.which("gcc"):
            raise SystemExit("bench: gcc is needed to build bench/microbench.c (apt-get install gcc)")
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(inputs / "microbench"), str(micro_src)], check=True)
        manifest["microbench_src"] = micro_src_hash
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest


# -- modes ----------------------------------------------------------------------

DEFAULT_INPUTS_HOLDER: list[str] = []  # set by main() once the inputs exist


@dataclass
class Mode:
    name: str
    label: str
    available: bool
    note: str
    prefix: object = None  # callable(project) -> list[str]


def modes(project: str) -> list[Mode]:
    out = [
        Mode("plain", "unsandboxed", True, "the command itself", lambda p: []),
        Mode("landlock", "Landlock only", True,
             "bench/landlock_only.py: peninsula.kernel.landlock.restrict_self(same roots as `peninsula run`, scoped), then exec",
             lambda p: [str(VENV_PY), str(BENCH / "landlock_only.py"), "--project", p, "--"]),
        Mode("landlock_w", "Landlock, write rights only (proposal)", True,
             "bench/landlock_only.py --write-rights-only: the same roots, but the ruleset handles only write rights "
             "(read, readdir, execute, ioctl unhandled rather than allowed on /), so reads and execs skip Landlock's path walk",
             lambda p: [str(VENV_PY), str(BENCH / "landlock_only.py"), "--write-rights-only", "--project", p, "--"]),
    ]
    floor = Path(DEFAULT_INPUTS_HOLDER[0]) / "notify_floor" if DEFAULT_INPUTS_HOLDER else None
    out.append(Mode("floor", "notify floor (C, CONTINUE only)", bool(floor and floor.exists()),
                    "bench/notify_floor.c --sync: write-intent open/openat sent to a C supervisor that answers "
                    "CONTINUE at once (no path read, no decision, no Landlock): the round-trip floor of any "
                    "user-notify design on this machine",
                    (lambda p: [str(floor), "--sync"]) if floor else None))
    bwrap = shutil.which("bwrap")
    bwrap_args = lambda p: [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--bind", p, p,  # noqa: E731
                            "--bind", "/tmp", "/tmp", "--bind", "/var/tmp", "/var/tmp", "--"]
    out.append(Mode("bwrap", "bubblewrap", bool(bwrap),
                    "bwrap --ro-bind / / --dev /dev --bind PROJ PROJ --bind /tmp /tmp --bind /var/tmp /var/tmp -- CMD "
                    "(no namespaces unshared besides mount; /dev and /dev/shm are bwrap's fresh ones)"
                    if bwrap else "not measured: no `bwrap` on PATH (apt-get install bubblewrap)",
                    bwrap_args if bwrap else None))
    sandlock, sandlock_why = sandlock_command()
    out.append(Mode("sandlock", "sandlock", bool(sandlock),
                    f"{sandlock_why}: -w PROJ -w /tmp -w /var/tmp -w /dev/null -r / -- CMD (bwrap's writable roots; git opens "
                    "GIT_CONFIG_GLOBAL=/dev/null read-write)" if sandlock
                    else f"not measured: {sandlock_why}",
                    (lambda p: sandlock + ["-w", p, "-w", "/tmp", "-w", "/var/tmp", "-w", "/dev/null", "-r", "/", "--"]) if sandlock else None))
    out.append(Mode("peninsula", "peninsula", PENINSULA.exists(),
                    "peninsula run --quiet --project PROJ -- CMD",
                    lambda p: [str(PENINSULA), "run", "--quiet", "--project", p, "--"]))
    out.append(Mode("peninsula_fast", "peninsula --fast", PENINSULA.exists(),
                    "peninsula run --fast --quiet --project PROJ -- CMD (exclusive creates and name changes left to Landlock)",
                    lambda p: [str(PENINSULA), "run", "--fast", "--quiet", "--project", p, "--"]))
    out.append(Mode("shell", "peninsula shell session", PENINSULA.exists() and os.path.exists("/bin/bash"),
                    "bench/shell_session.py: one supervised `bash -i` on a pty (HOME with only the hook in .bashrc; "
                    "the bench dir as its baseline root), standing in PROJ (a `.peninsula.toml` marker), for the whole "
                    "bench; each workload is a line typed at its prompt, timed by bash itself ($EPOCHREALTIME around "
                    "the command: fork and exec included, prompt hook and pty round trip not)",
                    None))
    return out


def sandlock_command() -> tuple[list[str] | None, str]:
    """How to run sandlock: its binary, else its Python SDK through bench/sandlock_run.py."""
    binary = shutil.which("sandlock")
    if binary:
        return [binary, "run"], "sandlock run"
    probe = subprocess.run([str(VENV_PY), "-c", "import sandlock; print(sandlock.__version__)"], capture_output=True, text=True)
    if probe.returncode == 0:
        return ([str(VENV_PY), str(BENCH / "sandlock_run.py")],
                f"sandlock {probe.stdout.strip()} through its Python SDK (bench/sandlock_run.py; its wheel has no CLI)")
    return None, "sandlock is not installed (`.venv/bin/pip install matplotlib sandlock py-spy`: the `bench` extra)"


# -- workloads ------------------------------------------------------------------


class Bench:
    def __init__(self, root: Path, args):
        self.root = root
        self.args = args
        self.inputs = root / "inputs"
        self.project = root / "proj"
        self.runs = self.project / "runs"
        self.counter = 0
        self.micro_n = 5000 if args.quick else 20000
        self.start_reps = 5 if args.quick else 15
        self.shell = None  # the shell-session mode's ShellSession, once started

    def run(self, mode: Mode, argv, cwd, env) -> tuple[float, str]:
        """One timed run of argv in a mode: wrapped in the mode's prefix, or typed at the session shell."""
        if mode.name != "shell":
            return run_once(mode.prefix(str(self.project)) + argv, cwd, env)
        base = self.base_env()
        extra = {k: v for k, v in env.items() if base.get(k) != v}
        if any(k not in env for k in base):
            raise ValueError("a workload that unsets variables cannot run in the shell mode")
        return self.shell.run(argv, cwd, extra, self.fresh("shell-out") / "stdout")

    def start_shell(self, root: Path) -> None:
        from shell_session import ShellSession

        self.shell = ShellSession(self.project, root / "shell-home", self.base_env())

    def fresh(self, tag: str) -> Path:
        """A new, never-used directory inside the project (nothing is deleted mid-bench)."""
        self.counter += 1
        path = self.runs / f"{self.counter:04d}-{tag}"
        path.mkdir(parents=True)
        return path

    def base_env(self) -> dict:
        env = dict(os.environ)
        for key in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "GIT_DIR", "GIT_WORK_TREE"):
            env.pop(key, None)
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null", LC_ALL="C")
        return env

    def workload(self, name: str, tag: str):
        """(argv, cwd, env) for one run of a workload, in a fresh directory."""
        env = self.base_env()
        if name == "micro":
            d = self.fresh(f"micro-{tag}")
            return [str(self.inputs / "microbench"), str(d), str(self.micro_n)], str(d), env
        if name == "tar":
            d = self.fresh(f"tar-{tag}")
            return ["tar", "xf", str(self.inputs / "src.tar")], str(d), env
        if name == "git":
            d = self.fresh(f"git-{tag}")
            env.update(GIT_DIR=str(d / ".git"), GIT_WORK_TREE=str(self.project / "tree"))
            return ["sh", "-c", "git init -q -b main && git add -A"], str(self.project / "tree"), env
        if name == "compileall":
            d = self.fresh(f"pyc-{tag}")
            env["PYTHONPYCACHEPREFIX"] = str(d)
            return [SYSTEM_PY, "-m", "compileall", "-q", "-j", "1", "py"], str(self.project), env
        if name == "start":
            return ["true"], str(self.project), env
        if name == "spawn":
            # A shell script's life: a process started and ended per step
            # (each exit is trapped in the shell session, for its children).
            script = f"i=0; while [ $i -lt {SPAWNS} ]; do /bin/true; i=$((i+1)); done"
            return ["sh", "-c", script], str(self.project), env
        raise ValueError(name)


def shell_true(argv, mode: Mode):
    """`true` is a bash builtin: the shell mode runs the binary, as the other modes do."""
    return [shutil.which("true") or "/bin/true"] if mode.name == "shell" and argv == ["true"] else argv


def run_once(argv, cwd, env, *, capture=True) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr.decode(errors='replace')[-2000:]}")
    return elapsed, proc.stdout.decode()


def parse_micro(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        out[key] = float(value) / 1000.0  # us per op
    return out


def sync() -> None:
    os.sync()


# -- trapped-call counting ---------------------------------------------------------

STRACE_UNKNOWN = {"fchmodat2", "setxattrat", "removexattrat", "file_setattr"}


def trapped_names() -> tuple[list[str], list[str]]:
    from peninsula.supervisor import table

    # the file and process calls of `run` (not the conditional ioctl and seccomp)
    names = [row.name for row in table.ROWS
             if row.family in ("opens", "names", "metadata", "xattr", "process") and row.name not in ("ioctl", "seccomp")]
    known = [n for n in names if n not in STRACE_UNKNOWN]
    return known, sorted(set(names) - set(known))


def count_trapped(argv, cwd, env, out_file: Path) -> dict:
    """Run argv once plainly under strace and count the syscalls peninsula's
    filter would send to the supervisor (opens only with write-intent flags)."""
    known, _ = trapped_names()
    cmd = ["strace", "-f", "-qq", "-e", "signal=none", "-e", "trace=" + ",".join(known), "-o", str(out_file)] + argv
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    counts: dict[str, int] = {}
    write_bits = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
    with open(out_file, errors="replace") as fh:
        for line in fh:
            parts = line.split(None, 1)
            if len(parts) < 2 or parts[1].startswith("<...") or "(" not in parts[1]:
                continue
            name = parts[1].split("(", 1)[0]
            if name not in known:
                continue
            if name in ("open", "openat", "open_by_handle_at"):
                args = parts[1].split("(", 1)[1]
                if not any(bit in args for bit in write_bits):
                    continue
            counts[name] = counts.get(name, 0) + 1
    out_file.unlink()
    return counts


ANSWERED = re.compile(r"peninsula: (\d+) requests answered by the compiled hot path, (\d+) by Python; "
                      r"supervisor CPU ([\d.]+) s \(([\d.]+) us per request\)")


def parse_answered(text: str) -> dict:
    match = ANSWERED.search(text)
    if not match:
        return {"error": "no --verbose counts in the output"}
    by_python = re.search(r"peninsula: answered by Python: (.*)", text)
    return {"compiled": int(match[1]), "python": int(match[2]), "cpu_s": float(match[3]),
            "per_request_us": float(match[4]), "python_by_syscall": by_python[1].strip() if by_python else ""}


def answered_by(bench, root: Path, workloads: list[str], shell: bool) -> dict:
    """Each workload once more with the supervisors' --verbose counts: `peninsula run` and a shell session."""
    from shell_session import ShellSession

    out: dict = {}
    for w in workloads:
        cmd, cwd, env = bench.workload(w, "verbose-run")
        proc = subprocess.run([str(PENINSULA), "run", "--verbose", "--project", str(bench.project), "--"] + cmd,
                              cwd=cwd, env=env, capture_output=True, text=True)
        out.setdefault(w, {})["peninsula run"] = parse_answered(proc.stderr)
        if shell:
            cmd, cwd, env = bench.workload(w, "verbose-shell")
            session = ShellSession(bench.project, root / "shell-home-verbose", bench.base_env(), verbose=True)
            try:
                base = bench.base_env()
                session.run(cmd, cwd, {k: v for k, v in env.items() if base.get(k) != v}, bench.fresh("shell-out") / "stdout")
            finally:
                tail = session.close()
            out[w]["shell session"] = parse_answered(tail)
    return out


# -- statistics and reporting ----------------------------------------------------------


def med(xs):
    return statistics.median(xs) if xs else None


ROWS = [
    # key, label, unit, scale
    ("micro.write", "write-intent open+close (existing file), per op", "us", 1.0),
    ("micro.create", "create (open O_CREAT new file)+close, per op", "us", 1.0),
    ("micro.write_abs", "write-intent open+close, absolute path, per op", "us", 1.0),
    ("micro.read", "read-only opens, per op", "us", 1.0),
    ("tar", "tar x, 117 MB / 4,062 files", "s", 1.0),
    ("git", "git init + add -A of that tree", "s", 1.0),
    ("compileall", "python -m compileall, 800 files", "s", 1.0),
    ("start", "start `true`", "ms", 1000.0),
    ("spawn", "sh: 1,000 runs of /bin/true (fork, exec, exit)", "s", 1.0),
]
SPAWNS = 1000


def fmt(value, unit):
    if value is None:
        return "-"
    if unit == "us":
        return f"{value:.1f} us"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.2f} s"


def summarise(samples: dict, mode_names: list[str]) -> dict:
    summary = {}
    for key, _label, _unit, scale in ROWS:
        row = {}
        base = med(samples.get(key, {}).get("plain", []))
        for m in mode_names:
            xs = [x * scale for x in samples.get(key, {}).get(m, [])]
            if not xs:
                continue
            md = med(xs)
            row[m] = {"median": md, "min": min(xs), "max": max(xs), "n": len(xs),
                      "ratio": md / (base * scale) if base else None}
        summary[key] = row
    return summary


def target_verdicts(summary: dict, samples: dict) -> list[dict]:
    out = []
    for mode in TARGET_MODES:
        for key, (kind, limit) in TARGETS.items():
            entry = summary.get(key, {}).get(mode)
            if entry is None or (kind == "abs_ms" and mode != "peninsula"):
                continue
            if kind == "ratio":
                value = entry["ratio"]
                text = f"{value:.2f}x (target <= {limit}x)"
            elif kind == "ratio_landlock":
                ll = summary[key].get("landlock")
                if ll is None:
                    continue
                value = entry["median"] / ll["median"]
                text = f"{value:.2f}x Landlock-only (target <= {limit}x)"
            elif kind == "abs_ms":
                value = entry["median"]
                text = f"{value:.1f} ms (target <= {limit:.0f} ms)"
            else:  # added_us: per-round (mode - plain) per op, median
                diffs = [b - a for a, b in zip(samples[key]["plain"], samples[key][mode])]
                value = med(diffs)
                text = f"{value:.1f} us added per write-intent open (target <= {limit:.0f} us)"
            met = value <= limit
            off = "met" if met else f"off by {value / limit:.2f}x the target"
            out.append({"mode": mode, "key": key, "value": value, "limit": limit, "kind": kind, "met": met,
                        "text": f"{text}: {off}"})
    return out


def markdown(meta: dict, summary: dict, verdicts: list[dict], mode_list: list[Mode], trapped: dict, extra: dict) -> str:
    measured = [m for m in mode_list if m.name in meta["modes_run"]]
    lines = [f"# peninsula benchmark, {meta['date']}", ""]
    lines.append(f"{meta['rounds']} interleaved rounds (mode order rotates each round); median (min-max) of the rounds; "
                 f"ratio = median / unsandboxed median. Host: {meta['host']}. Bench dir: `{meta['dir']}` ({meta['fstype']}).")
    lines.append(f"1-minute load average at each round's start->end: {', '.join(meta['loadavg'])} "
                 "(other engineers' test suites share the machine).")
    lines.append("")
    header = "| workload | " + " | ".join(m.label for m in measured) + " |"
    lines += [header, "|" + "---|" * (len(measured) + 1)]
    for key, label, unit, _scale in ROWS:
        row = summary.get(key, {})
        cells = []
        for m in measured:
            e = row.get(m.name)
            if e is None:
                cells.append("-")
                continue
            cell = f"{fmt(e['median'], unit)} ({fmt(e['min'], unit).split()[0]}-{fmt(e['max'], unit)})"
            if m.name != "plain" and e["ratio"] is not None:
                cell += f" **{e['ratio']:.2f}x**"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Targets (issue 15; peninsula and shell-session columns)", ""]
    for v in verdicts:
        lines.append(f"- {'MET' if v['met'] else 'NOT MET'}: {v['mode']} `{v['key']}` {v['text']}")
    if extra.get("per_trapped"):
        shown = [m for m in mode_list if any(m.name in e["by_mode"] for e in extra["per_trapped"].values())]
        lines += ["", "## Cost per trapped syscall in real workloads", "",
                  "Trapped calls counted by a separate plain run under `strace -f` (opens only with write-intent flags). "
                  "Cost = (mode median - Landlock-only median - (mode's start `true` - Landlock-only's)) / trapped calls: "
                  "added time (per trapped call).", "",
                  "| workload | trapped calls | by syscall | " + " | ".join(m.label for m in shown) + " |",
                  "|---|---|---|" + "---|" * len(shown)]
        for key, e in extra["per_trapped"].items():
            top = ", ".join(f"{k} {v}" for k, v in sorted(e["counts"].items(), key=lambda kv: -kv[1])[:6])
            cells = [f"{e['by_mode'][m.name]['added_s']:.2f} s ({e['by_mode'][m.name]['per_call_us']:.1f} us)" for m in shown]
            lines.append(f"| {key} | {e['total']} | {top} | " + " | ".join(cells) + " |")
        if extra.get("strace_unknown"):
            lines.append(f"\n(strace here cannot name {', '.join(extra['strace_unknown'])}; none of the workloads uses them.)")
    if extra.get("answered"):
        lines += ["", "## Who answered the requests", "",
                  "One more run of each workload with `peninsula run --verbose` and in a `peninsula shell --verbose` "
                  "session standing in the project (its counts include the session's own start and `cd`, a few dozen "
                  "requests): the supervisor's own counts at exit.", "",
                  "| workload | mode | compiled path | Python | supervisor CPU | per request | answered by Python |",
                  "|---|---|---|---|---|---|---|"]
        for key, per in extra["answered"].items():
            for mode, e in per.items():
                if "error" in e:
                    lines.append(f"| {key} | {mode} | - | - | - | - | {e['error']} |")
                    continue
                lines.append(f"| {key} | {mode} | {e['compiled']} | {e['python']} | {e['cpu_s']:.3f} s | "
                             f"{e['per_request_us']:.1f} us | {e['python_by_syscall'] or '-'} |")
    lines += ["", "## Modes", ""]
    for m in mode_list:
        lines.append(f"- **{m.label}**: {m.note}")
    lines += ["", "## Notes", ""]
    for note in meta["notes"]:
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def chart(summary: dict, verdicts: list[dict], mode_list: list[Mode], path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("ratios.png NOT written: matplotlib is not installed in this interpreter "
                "(`.venv/bin/pip install matplotlib sandlock py-spy`: the `bench` extra, which setup.sh leaves out)")
    shown = [m for m in mode_list if m.name != "plain" and any(m.name in summary.get(k, {}) for k, *_ in ROWS)]
    keys = [k for k, *_ in ROWS if summary.get(k, {}).get("plain")]
    labels = {"micro.write": "write open\n(per op)", "micro.create": "create\n(per op)", "micro.write_abs": "write open abs\n(per op)",
              "micro.read": "read-only open\n(per op)", "tar": "tar x", "git": "git init+add", "compileall": "compileall",
              "start": "start `true`", "spawn": "1,000 processes"}
    fig, ax = plt.subplots(figsize=(12, 5.5))
    width = 0.8 / max(1, len(shown))
    colors = {"floor": "#aaaaaa", "landlock": "#4c72b0", "landlock_w": "#93b5e0", "bwrap": "#55a868", "sandlock": "#8172b2", "peninsula": "#c44e52", "peninsula_fast": "#dd8452", "shell": "#937860"}
    for i, m in enumerate(shown):
        xs, ys = [], []
        for j, k in enumerate(keys):
            e = summary[k].get(m.name)
            if e and e["ratio"]:
                xs.append(j + (i - (len(shown) - 1) / 2) * width)
                ys.append(e["ratio"])
        bars = ax.bar(xs, ys, width, label=m.label, color=colors.get(m.name))
        for x, y in zip(xs, ys):
            ax.text(x, y * 1.04, f"{y:.2f}" if y < 10 else f"{y:.0f}", ha="center", va="bottom", fontsize=7, rotation=90)
    for j, k in enumerate(keys):
        kind, limit = TARGETS.get(k, (None, None))
        if kind == "ratio":
            ax.hlines(limit, j - 0.45, j + 0.45, colors="black", linestyles="dashed", linewidth=1)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([labels.get(k, k) for k in keys], fontsize=8)
    ax.set_ylabel("time / unsandboxed time (log scale)")
    ax.set_title("peninsula bench: ratio to unsandboxed (median of rounds); dashed = target ratio")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return None


# -- main ----------------------------------------------------------------------------


def fs_type(path: Path) -> str:
    """The mount's file-system type from /proc/mounts (stat -f says ext2/ext3 for ext4)."""
    real, best, kind = os.path.realpath(path), "", "?"
    with open("/proc/mounts") as fh:
        for line in fh:
            fields = line.split()
            mnt = fields[1].replace("\\040", " ")
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fields[2]
    return kind


def create_cost_us(directory: Path, count: int = 300) -> float:
    """Median cost of creating one empty file in a fresh directory (files are kept)."""
    directory.mkdir(parents=True)
    costs = []
    for i in range(count):
        t0 = time.perf_counter_ns()
        fd = os.open(directory / f"p{i:04d}", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644)
        costs.append(time.perf_counter_ns() - t0)
        os.close(fd)
    return statistics.median(costs) / 1000.0


def spread_directories(runs: Path) -> str | None:
    """chattr +T: ext4's Orlov allocator then places each run's directory in a
    block group of its own choosing, away from the groups other people's test
    suites fill and empty under /var/lib (their deletions make our creates
    scan, see wait_for_quiet_inodes)."""
    proc = subprocess.run(["chattr", "+T", str(runs)], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"chattr +T {runs} failed ({proc.stderr.strip()}); run directories share one ext4 block group"
    return None


def wait_for_quiet_inodes(root: Path, runs: Path, limit_s: float = 420.0) -> float:
    """Wait until creating a file here costs what it should.

    ext4 without a journal skips free inodes whose i_dtime is under 60 s old
    (under 360 s while their inode-table block is dirty), scanning past each
    one on every create; after a mass delete in this block group a create
    costs 0.2-1.2 ms instead of ~20 us. Probe, and wait until it passes.
    """
    t0 = time.monotonic()
    probe = 0
    while True:
        probe += 1
        cost = create_cost_us(runs / f"probe-{probe:02d}")
        waited = time.monotonic() - t0
        if cost < CREATE_PROBE_LIMIT_US:
            if probe > 1:
                log(f"creates are back to {cost:.0f} us after {waited:.0f} s")
            return cost
        if waited > limit_s:
            log(f"creates still cost {cost:.0f} us after {waited:.0f} s; going on (create figures will be inflated)")
            return cost
        if probe == 1:
            log(f"a create costs {cost:.0f} us here (recently freed inodes in this ext4 group, no journal); "
                f"waiting for it to drop under {CREATE_PROBE_LIMIT_US:.0f} us")
        time.sleep(15)


def cleanup(root: Path, runs: Path) -> None:
    if runs.exists():
        shutil.rmtree(runs)
        sync()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="peninsula benchmark (see the module docstring)")
    ap.add_argument("--quick", action="store_true", help="2 rounds, 5k-op microbenchmark, fewer start samples")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 5, --quick 2)")
    ap.add_argument("--dir", default=DEFAULT_DIR, help=f"bench directory on real disk (default {DEFAULT_DIR})")
    ap.add_argument("--only", help="comma-separated workloads: micro,tar,git,compileall,start,spawn")
    ap.add_argument("--modes", help="comma-separated modes to run (default: all available)")
    ap.add_argument("--no-strace", action="store_true", help="skip counting trapped syscalls with strace")
    ap.add_argument("--no-answered", action="store_true",
                    help="skip the --verbose runs that count which requests the compiled path and Python answered")
    ap.add_argument("--keep", action="store_true", help="keep the runs' outputs (they are deleted at the end otherwise)")
    ap.add_argument("--idle", type=float, metavar="LOAD",
                    help="start each round only once the 1-minute load average is under LOAD (an idle-machine figure); "
                         "waits up to --idle-timeout per round, then runs the round anyway and says so")
    ap.add_argument("--idle-timeout", type=float, default=600.0, metavar="S", help="see --idle (default 600 s)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    # The commit measured is the one at the start (the tree may move on while the bench runs).
    args.code_head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True).stdout.strip()
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    fstype = fs_type(root)
    if fstype in ("tmpfs", "ramfs"):
        raise SystemExit(f"bench: {root} is on {fstype}; use --dir on a real disk (e.g. under /var/lib or /work)")
    if not PENINSULA.exists():
        raise SystemExit(f"bench: {PENINSULA} not found; run ./setup.sh first")
    RESULTS.mkdir(exist_ok=True)
    notes = []
    manifest = prepare_inputs(root)
    bench = Bench(root, args)
    DEFAULT_INPUTS_HOLDER[:] = [str(bench.inputs)]
    # The project: inputs the workloads read live in it too (git's tree, the .py files).
    bench.project.mkdir(exist_ok=True)
    for name in ("tree", "py"):
        link = bench.project / name
        if not link.exists():
            shutil.copytree(bench.inputs / name, link, symlinks=True)
    if bench.runs.exists():
        log(f"removing leftovers of an earlier bench in {bench.runs}")
        cleanup(root, bench.runs)
    bench.runs.mkdir()
    spread = spread_directories(bench.runs)
    if spread:
        notes.append(spread)
        log(spread)
    probe_us = wait_for_quiet_inodes(root, bench.runs)

    all_modes = modes(str(bench.project))
    wanted = set(args.modes.split(",")) if args.modes else None
    run_modes = [m for m in all_modes if m.available and (wanted is None or m.name in wanted or m.name == "plain")]
    for m in all_modes:
        if not m.available:
            log(f"{m.label}: {m.note}")
            notes.append(f"{m.label}: {m.note}.")
    workloads = args.only.split(",") if args.only else ["micro", "tar", "git", "compileall", "start", "spawn"]
    if any(m.name == "shell" for m in run_modes):
        log("starting the supervised shell session (bench/shell_session.py)")
        bench.start_shell(root)
    try:
        return _measure(args, root, rounds, fstype, manifest, bench, probe_us, notes, all_modes, run_modes, workloads)
    finally:
        if bench.shell is not None:
            bench.shell.close()


def wait_for_idle(limit: float, timeout_s: float) -> tuple[bool, float]:
    """Wait until the 1-minute load average is under limit; (got quiet, seconds waited)."""
    t0 = time.monotonic()
    while os.getloadavg()[0] >= limit:
        if time.monotonic() - t0 > timeout_s:
            return False, time.monotonic() - t0
        time.sleep(10)
    return True, time.monotonic() - t0


def _measure(args, root, rounds, fstype, manifest, bench, probe_us, notes, all_modes, run_modes, workloads) -> int:

    # Validation and warm-up: every workload once in every mode, checked.
    log("validation pass (untimed): each workload once in each mode")
    for w in workloads:
        for m in run_modes:
            cmd, cwd, env = bench.workload(w, f"check-{m.name}")
            bench.run(m, shell_true(cmd, m), cwd, env)
    report_file = root / "peninsula-report.json"
    cmd, cwd, env = bench.workload("micro", "check-report")
    subprocess.run([str(PENINSULA), "run", "--quiet", "--report", str(report_file), "--project", str(bench.project), "--"] + cmd,
                   cwd=cwd, env=env, check=True, capture_output=True)
    rep = json.loads(report_file.read_text())
    report_file.unlink()
    if rep.get("denials"):
        notes.append(f"WARNING: peninsula reported {rep['denials']} denials on the microbenchmark: {rep.get('first_denials')}")

    samples: dict[str, dict[str, list[float]]] = {}
    loadavg = []

    def add(key, mode, value):
        samples.setdefault(key, {}).setdefault(mode, []).append(value)

    idle_rounds = []
    t_start = time.monotonic()
    for r in range(rounds):
        if args.idle is not None:
            quiet, waited = wait_for_idle(args.idle, args.idle_timeout)
            idle_rounds.append({"round": r + 1, "quiet": quiet, "waited_s": round(waited)})
            if not quiet:
                log(f"round {r + 1}: the 1-minute load never fell under {args.idle} in {waited:.0f} s; running it anyway (NOT idle)")
        loadavg.append(open("/proc/loadavg").read().split()[0])
        order = run_modes[r % len(run_modes):] + run_modes[: r % len(run_modes)]
        log(f"round {r + 1}/{rounds} (load {loadavg[-1]}; order {', '.join(m.name for m in order)})")
        for w in workloads:
            for m in order:
                if w == "start":
                    times = []
                    for _ in range(bench.start_reps):
                        cmd, cwd, env = bench.workload(w, m.name)
                        elapsed, _ = bench.run(m, shell_true(cmd, m), cwd, env)
                        times.append(elapsed)
                    add("start", m.name, med(times))
                    continue
                cmd, cwd, env = bench.workload(w, f"r{r}-{m.name}")
                sync()
                elapsed, out = bench.run(m, cmd, cwd, env)
                if w == "micro":
                    for k, v in parse_micro(out).items():
                        add(f"micro.{k}", m.name, v)
                else:
                    add(w, m.name, elapsed)
        loadavg[-1] += f"->{open('/proc/loadavg').read().split()[0]}"
    bench_time = time.monotonic() - t_start
    if args.idle is not None:
        loud = [str(x["round"]) for x in idle_rounds if not x["quiet"]]
        notes.append(f"--idle {args.idle}: each round waited for a 1-minute load under {args.idle} (waits: "
                     + ", ".join(f"{x['waited_s']} s" for x in idle_rounds) + "); "
                     + (f"rounds {', '.join(loud)} never got quiet within {args.idle_timeout:.0f} s and ran loaded."
                        if loud else "every round started quiet."))

    mode_names = [m.name for m in run_modes]
    summary = summarise(samples, mode_names)
    verdicts = target_verdicts(summary, samples)

    extra: dict = {}
    if not args.no_strace and shutil.which("strace") and "peninsula" in mode_names and "landlock" in mode_names:
        known, unknown = trapped_names()
        extra["strace_unknown"] = unknown
        extra["per_trapped"] = {}
        supervised = [m for m in ("peninsula", "peninsula_fast", "shell") if m in mode_names]

        def start_diff(mode):
            st = summary.get("start", {})
            if st.get(mode) and st.get("landlock"):
                return (st[mode]["median"] - st["landlock"]["median"]) / 1000.0
            return 0.0

        for w in ("tar", "git", "compileall"):
            if w not in workloads:
                continue
            cmd, cwd, env = bench.workload(w, "strace")
            counts = count_trapped(cmd, cwd, env, root / "strace.out")
            total = sum(counts.values())
            by_mode = {}
            for mode in supervised:
                added = summary[w][mode]["median"] - summary[w]["landlock"]["median"] - start_diff(mode)
                by_mode[mode] = {"added_s": added, "per_call_us": added / total * 1e6 if total else float("nan")}
            extra["per_trapped"][w] = {"counts": counts, "total": total, "by_mode": by_mode}
        if not args.no_answered:
            extra["answered"] = answered_by(bench, root, [w for w in ("micro", "tar", "git", "compileall") if w in workloads],
                                            "shell" in mode_names)
    elif not args.no_strace:
        notes.append("trapped-call counts skipped: needs strace and both the peninsula and landlock modes")

    notes += [
        f"Workloads generated deterministically (generator v{GEN_VERSION}): {manifest['tree']['files']} files / "
        f"{manifest['tree']['dirs']} dirs / {manifest['tree']['bytes'] / 1e6:.0f} MB tar (sha256 {manifest['tree']['tar_sha256'][:12]}); "
        f"{manifest['python']['files']} .py files ({manifest['python']['bytes'] / 1e6:.1f} MB).",
        f"Microbenchmark: bench/microbench.c (gcc -O2), {bench.micro_n} ops per phase, timed inside the process, so no start-up cost; "
        "supervisor cost per write-intent open = peninsula per-op time minus plain per-op time, per round, median.",
        "tar/git/compileall are wall time of the whole command, start-up of the wrapper included. `sync` before each timed run. "
        "git: GIT_DIR in a fresh directory, work tree shared; compileall: PYTHONPYCACHEPREFIX in a fresh directory, "
        f"{SYSTEM_PY}, -j 1.",
        f"start `true`: median of {bench.start_reps} runs per mode per round (subprocess.run wall time, ~1 ms of fork/exec included).",
        "Landlock-only and peninsula start-up include a Python interpreter start (python -c pass is ~14-20 ms here).",
        "Nothing is deleted between runs: ext4 here has no journal, and a create right after a mass delete in the same "
        "block group scans past every inode freed in the last 60-360 s (measured 20 us -> 180-1200 us per create). "
        "The other engineers' tests create and delete under /var/lib/peninsula-tests, in the same block groups as "
        "/var/lib/peninsula-bench, so each run's directory is spread to a group of its own (chattr +T on the runs dir). "
        f"Before the rounds a probe create cost {probe_us:.0f} us (limit {CREATE_PROBE_LIMIT_US:.0f} us). "
        "Noise from the other engineers' test suites (same disk, 2 cores) remains: see min-max and the load averages.",
        f"Timed part took {bench_time:.0f} s.",
    ]
    head = args.code_head
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "peninsula"], capture_output=True,
                           text=True).stdout.split("\n")
    dirty = [line[3:] for line in dirty if line.strip()]
    notes.insert(0, f"Code measured: commit {head}" + (f" plus uncommitted changes in {', '.join(dirty)} "
                                                       "(other engineers edit the tree meanwhile)" if dirty else "") + ".")
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rounds": rounds,
        "host": f"{platform.node()} {platform.release()}, {os.cpu_count()} CPUs",
        "dir": str(root),
        "fstype": fstype,
        "loadavg": loadavg,
        "modes_run": mode_names,
        "notes": notes,
    }
    text = markdown(meta, summary, verdicts, all_modes, {}, extra)
    warn = chart(summary, verdicts, all_modes, RESULTS / "ratios.png")
    if warn:
        text += f"\n**{warn}**\n"
        log(warn)
    else:
        text += "\n![ratios](ratios.png)\n"
    (RESULTS / "latest.md").write_text(text)
    raw = {"meta": meta, "samples": samples, "summary": summary, "verdicts": verdicts, "extra": extra, "manifest": manifest}
    (RESULTS / "latest.json").write_text(json.dumps(raw, indent=1))
    (RESULTS / f"raw-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(raw, indent=1))
    print(text)
    if not args.keep:
        log("deleting the runs' outputs (and profile_supervisor.py's)")
        for extra_runs in sorted(bench.project.glob("profile-runs-*")):
            shutil.rmtree(extra_runs)
        cleanup(root, bench.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
