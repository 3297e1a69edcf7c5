"""Where the supervisor's time goes, measured without editing peninsula.

    .venv/bin/python bench/profile_supervisor.py [--workload micro,tar] [--how timing,cprofile,pyspy,primitives]
                                                 [--patch NAME,...] [--dir DIR]

  timing      runs the workload through the library API (peninsula.Sandbox) in
              this process; Supervisor.handle_one and serve are wrapped (from
              here, by monkeypatching before the supervisor is forked) to time
              every request with perf_counter_ns: per-request handling time by
              syscall, and the time the supervisor spends waiting in poll().
  cprofile    the same, with the supervisor's serve() under cProfile: call
              counts per request and the costliest functions (cProfile inflates
              Python-level calls; use it for structure, py-spy for shares).
  pyspy       `py-spy record --subprocesses --nonblocking` on the real CLI
              (`peninsula run --quiet ...`): sampled shares of the supervisor's
              busy time, by function (inclusive) and by leaf.
  primitives  the unit cost of each operation a write-intent open performs
              (/proc/PID/status read, open of /proc/PID/cwd, openat2, readlink
              of /proc/self/fd/N, fstat, reopen, process_vm_readv, policy...),
              timed in a loop against a live helper process.

--patch applies experimental fast paths (monkeypatched here, for measuring
what a proposal would save; they are NOT safe as written):
  status_cache     target.Status cached per tid (the proposal would key it on
                   (pid, start time) and invalidate it on trapped umask/setfsuid)
  location_cache   resolve.location() answers from a dict keyed by (st_dev, st_ino)
                   of the pinned fd instead of readlink(/proc/self/fd/N)
  cwd_cache        Context.cwd_fd() reuses one O_PATH fd per tid (the proposal
                   would trap chdir/fchdir, as the shell mode already does)
  policy_index     policy.protection_for() first looks the path's ancestors up
                   in a set of the protections' literal prefixes and returns
                   None at once when none matches (exact, not a shortcut)

Writes bench/results/profile-*.txt / .json and prints a summary.

It profiles the pure-Python hot path (PENINSULA_PURE_PYTHON=1 is set); for
the compiled one, `peninsula run --verbose` prints the supervisor's CPU time
per request and which requests Python answered.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import ctypes
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import run as benchrun  # noqa: E402

RESULTS = benchrun.RESULTS
PYSPY = benchrun.REPO / ".venv" / "bin" / "py-spy"


def log(message: str) -> None:
    benchrun.log(message)


# -- the workloads, as run.py builds them ---------------------------------------


class Setup:
    def __init__(self, root: Path, micro_n: int):
        self.root = root
        benchrun.prepare_inputs(root)
        args = argparse.Namespace(quick=False)
        self.bench = benchrun.Bench(root, args)
        self.bench.micro_n = micro_n
        self.bench.runs = self.bench.project / f"profile-runs-{time.strftime('%Y%m%d-%H%M%S')}"
        self.bench.project.mkdir(exist_ok=True)
        for name in ("tree", "py"):
            if not (self.bench.project / name).exists():
                shutil.copytree(self.bench.inputs / name, self.bench.project / name, symlinks=True)
        self.bench.runs.mkdir()
        spread = benchrun.spread_directories(self.bench.runs)
        if spread:
            log(spread)
        benchrun.wait_for_quiet_inodes(root, self.bench.runs)

    def workload(self, name: str, tag: str):
        """As run.py's, except the microbenchmark: its files are created here,
        outside the sandbox, and only the write-intent phases on existing files
        run (creates cost whatever ext4's inode allocator costs that minute)."""
        argv, cwd, env = self.bench.workload(name, tag)
        if name == "micro":
            for i in range(self.bench.micro_n):
                os.close(os.open(os.path.join(cwd, f"c{i:05d}"), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            argv = argv + ["write,write_abs"]
        return argv, cwd, env

    def finish(self, clean: bool):
        # Deleting makes the next minutes' creates slow (see run.py): kept unless --clean.
        if clean:
            benchrun.cleanup(self.root, self.bench.runs)
        else:
            log(f"outputs kept in {self.bench.runs} (bench/run.py removes them at its end, or use --clean)")


# -- in-process instrumentation --------------------------------------------------


def apply_patches(names: list[str]) -> None:
    from peninsula.supervisor.handlers import opens, request
    from peninsula.kernel import resolve
    from peninsula.kernel import target

    if "status_cache" in names:
        real = target.Status
        cache: dict[int, object] = {}

        def cached_status(tid):
            st = cache.get(tid)
            if st is None:
                st = cache[tid] = real(tid)
            return st

        target.Status = cached_status  # the handlers read target.Status via the module
    if "location_cache" in names:
        real_location = resolve.location
        places: dict[tuple[int, int], str] = {}

        def cached_location(fd):
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            where = places.get(key)
            if where is None:
                where = places[key] = real_location(fd)
            return where

        resolve.location = cached_location
        request.location = opens.location = cached_location
    if "policy_index" in names:
        from peninsula.policy import engine as policy

        real_protection = policy.protection_for
        prefixes_of: dict[int, frozenset] = {}

        def literal_prefix(pattern: str) -> str:
            parts = pattern.split("/")
            for i, part in enumerate(parts):
                if any(c in part for c in "*?["):
                    return "/".join(parts[:i]) or "/"
            return pattern

        def protection_for(pol, path):
            prefixes = prefixes_of.get(id(pol))
            if prefixes is None:
                prefixes = prefixes_of[id(pol)] = frozenset(literal_prefix(p.lstrip("!")) for p in pol.protected)
            probe = path
            while probe:
                if probe in prefixes:
                    return real_protection(pol, path)
                probe = probe[: probe.rfind("/")]
            return real_protection(pol, path) if "/" in prefixes else None

        policy.protection_for = protection_for
    if "cwd_cache" in names:
        fds: dict[int, int] = {}
        O_PATH_DIR = resolve.O_PATH_DIR

        def cwd_fd(self):
            fd = fds.get(self.tid)
            if fd is None:
                fd = fds[self.tid] = os.open(f"/proc/{self.tid}/cwd", O_PATH_DIR)
            return fd

        resolve.Context.cwd_fd = cwd_fd


LISTENER_TIME: dict[str, list[int]] = {}


def instrument(out_path: Path, how: str) -> None:
    """Wrap the supervisor's loop; runs in the forked supervisor, dumps at the end."""
    from peninsula.supervisor import loop as S

    orig_handle = S.Supervisor.handle_one
    orig_serve = S.Supervisor.serve
    clock = time.perf_counter_ns

    cpu_clock = time.thread_time_ns

    def handle_one(self):
        t0, c0 = clock(), cpu_clock()
        orig_handle(self)
        self._bench_samples.append((self.listener._notif.data.nr, clock() - t0, cpu_clock() - c0))

    def serve(self):
        self._bench_samples = []
        t0 = clock()
        cpu0 = time.process_time_ns()
        prof = None
        if how == "cprofile":
            prof = cProfile.Profile()
            prof.enable()
        try:
            orig_serve(self)
        finally:
            if prof is not None:
                prof.disable()
                prof.dump_stats(str(out_path) + ".pstats")
            total = clock() - t0
            cpu = time.process_time_ns() - cpu0
            with open(str(out_path) + ".json", "w") as fh:
                json.dump({"serve_ns": total, "cpu_ns": cpu, "requests": self.requests, "errors": self.errors,
                           "samples": self._bench_samples, "listener": LISTENER_TIME}, fh)

    S.Supervisor.handle_one = handle_one
    S.Supervisor.serve = serve
    if how == "timing":
        from peninsula.kernel import seccomp

        for name in ("recv", "id_valid", "_send", "reply_fd"):
            orig = getattr(seccomp.Listener, name)

            def timed(self, *a, _orig=orig, _name=name):
                t0, c0 = clock(), cpu_clock()
                try:
                    return _orig(self, *a)
                finally:
                    acc = LISTENER_TIME.setdefault(_name, [0, 0, 0])
                    acc[0] += 1
                    acc[1] += clock() - t0
                    acc[2] += cpu_clock() - c0

            setattr(seccomp.Listener, name, timed)


def run_in_process(setup: Setup, workload: str, how: str, patches: list[str]) -> dict:
    """Fork a helper that instruments peninsula and runs the workload via the library API."""
    name = f"profile-{workload}-{how}{'-' + '+'.join(patches) if patches else ''}"
    # The supervisor is confined to the writable roots: it dumps inside the project.
    out = setup.bench.fresh(f"dump-{how}") / name
    cmd, cwd, env = setup.workload(workload, f"{how}")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            apply_patches(patches)
            instrument(out, how)
            from peninsula import Sandbox

            os.chdir(cwd)
            t0 = time.perf_counter()
            result = Sandbox(project=str(setup.bench.project), quiet=True, env=env, stderr=sys.stderr).run(cmd)
            wall = time.perf_counter() - t0
            info = json.loads(Path(str(out) + ".json").read_text())
            info.update(wall_s=wall, status=result.status, denials=result.denials)
            Path(str(out) + ".json").write_text(json.dumps(info))
            code = 0 if result.status == "ok" else 3
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"profile: {workload}/{how} failed (exit {os.waitstatus_to_exitcode(status)})")
    info = json.loads(Path(str(out) + ".json").read_text())
    for ext in (".json", ".pstats"):
        if Path(str(out) + ext).exists():
            shutil.copy(str(out) + ext, RESULTS / (name + ext))
    info["out"] = str(RESULTS / name)
    return info


def syscall_names() -> dict[int, str]:
    """x86_64 syscall numbers to names (pyseccomp resolves both ways)."""
    import pyseccomp as sc

    from peninsula.kernel.seccomp import NEWER_SYSCALLS

    names = {nr: name for name, nr in NEWER_SYSCALLS.items()}
    arch = sc.system_arch()
    for nr in range(0, 460):
        try:
            name = sc.resolve_syscall(arch, nr)
        except Exception:
            continue
        if isinstance(name, bytes) and name:
            names[nr] = name.decode()
    return names


def timing_summary(info: dict, micro_n: int | None) -> dict:
    """Per request: wall time of handle_one and the supervisor thread's CPU time in it.

    With SYNC_WAKE_UP the answered target runs on the supervisor's CPU and
    usually preempts it inside the answering ioctl until the target's next
    trapped call, so wall time includes the target's own work in between;
    thread CPU time does not.
    """
    names = syscall_names()
    by_nr = collections.defaultdict(list)
    for nr, ns, cpu in info["samples"]:
        by_nr[nr].append((ns / 1000.0, cpu / 1000.0))
    n = len(info["samples"])
    handled = sum(s[1] for s in info["samples"]) / 1e9
    rows = []
    for nr, xs in sorted(by_nr.items(), key=lambda kv: -len(kv[1])):
        wall = sorted(x[0] for x in xs)
        cpu = sorted(x[1] for x in xs)
        rows.append({"syscall": names.get(nr, str(nr)), "count": len(xs), "median_us": statistics.median(wall),
                     "p10_us": wall[len(wall) // 10], "p90_us": wall[(len(wall) * 9) // 10],
                     "cpu_median_us": statistics.median(cpu), "cpu_mean_us": sum(cpu) / len(cpu), "total_s": sum(wall) / 1e6})
    wall_all = sorted(s[1] / 1000.0 for s in info["samples"])
    cpu_all = sorted(s[2] / 1000.0 for s in info["samples"])
    return {
        "requests": n,
        "median_us": statistics.median(wall_all) if wall_all else None,
        "cpu_median_us": statistics.median(cpu_all) if cpu_all else None,
        "cpu_mean_us": sum(cpu_all) / n if n else None,
        "handled_s": handled,
        "serve_s": info["serve_ns"] / 1e9,
        "cpu_s": info["cpu_ns"] / 1e9,
        "waiting_s": info["serve_ns"] / 1e9 - handled,
        "wall_s": info["wall_s"],
        "by_syscall": rows,
        "listener": {k: {"calls": v[0], "us_per_call": v[1] / max(1, v[0]) / 1000.0,
                         "cpu_us_per_call": (v[2] if len(v) > 2 else 0) / max(1, v[0]) / 1000.0,
                         "us_per_request": v[1] / max(1, n) / 1000.0}
                     for k, v in info.get("listener", {}).items()},
    }


def cprofile_summary(path: str, requests: int, top: int = 30) -> tuple[str, list[dict]]:
    stats = pstats.Stats(path)
    stats.strip_dirs()
    rows = []
    for (fname, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
        rows.append({"func": f"{fname}:{line}({func})", "ncalls": nc, "per_request": nc / max(1, requests),
                     "tottime_s": tt, "cumtime_s": ct})
    total = sum(r["tottime_s"] for r in rows)
    rows.sort(key=lambda r: -r["tottime_s"])
    lines = [f"cProfile of Supervisor.serve: {requests} requests, {total:.2f} s of profiled time "
             f"({total / max(1, requests) * 1e6:.1f} us/request under cProfile)", "",
             f"{'tottime':>8} {'share':>6} {'cumtime':>8} {'calls/req':>9}  function"]
    for r in rows[:top]:
        lines.append(f"{r['tottime_s']:8.3f} {r['tottime_s'] / total:6.1%} {r['cumtime_s']:8.3f} {r['per_request']:9.2f}  {r['func']}")
    by_cum = sorted(rows, key=lambda r: -r["cumtime_s"])
    lines += ["", "by cumulative time:", f"{'cumtime':>8} {'share':>6} {'calls/req':>9}  function"]
    for r in by_cum[:top]:
        lines.append(f"{r['cumtime_s']:8.3f} {r['cumtime_s'] / total:6.1%} {r['per_request']:9.2f}  {r['func']}")
    return "\n".join(lines) + "\n", rows


# -- py-spy on the real CLI -----------------------------------------------------------


def pyspy(setup: Setup, workload: str, rate: int) -> dict:
    if not PYSPY.exists() and not shutil.which("py-spy"):
        return {"skipped": "py-spy is not installed (`.venv/bin/pip install py-spy`)"}
    exe = str(PYSPY) if PYSPY.exists() else shutil.which("py-spy")
    out = RESULTS / f"profile-{workload}-pyspy.txt"
    cmd, cwd, env = setup.workload(workload, "pyspy")
    full = [exe, "record", "--subprocesses", "--nonblocking", "-r", str(rate), "-f", "raw", "-o", str(out), "--",
            str(benchrun.PENINSULA), "run", "--quiet", "--project", str(setup.bench.project), "--"] + cmd
    proc = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"skipped": f"py-spy failed ({proc.returncode}): {proc.stderr[-500:]}"}
    return analyse_collapsed(out)


def _func(frame: str) -> str:
    # "name (path/file.py:123)" -> "file.py:name"
    name, _, where = frame.rpartition(" (")
    if not name:
        return frame
    file = where.rstrip(")").rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"{file}:{name}"


def analyse_collapsed(path: Path) -> dict:
    inclusive = collections.Counter()
    leaf = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        marks = [i for i, f in enumerate(frames) if f.split(" (")[0].endswith("handle_one")]
        if not marks:
            continue  # the supervisor's request handling only
        n = int(count)
        total += n
        below = frames[marks[0]:]
        for f in set(_func(x) for x in below):
            inclusive[f] += n
        leaf[_func(below[-1])] += n
    return {"samples": total, "inclusive": inclusive.most_common(40), "leaf": leaf.most_common(40), "file": str(path)}


# -- unit costs of the primitives ----------------------------------------------------------


def primitives(setup: Setup, loops: int = 20000) -> list[dict]:
    from peninsula.kernel import libc
    from peninsula.policy import engine as policy
    from peninsula.kernel import resolve
    from peninsula.kernel import target
    from peninsula.sandbox.api import Sandbox

    work = setup.bench.fresh("primitives")
    for i in range(loops):
        pass
    fname = work / "existing"
    fname.write_bytes(b"x")
    helper = subprocess.Popen(["sleep", "600"], cwd=str(work))
    pid = helper.pid
    pol = Sandbox(project=str(setup.bench.project), quiet=True).policy()
    proj_fd = os.open(str(setup.bench.project), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    rel_from_proj = str(fname.relative_to(setup.bench.project)).encode()
    cwd = os.open(f"/proc/{pid}/cwd", resolve.O_PATH_DIR)
    pinned = libc.openat2(cwd, b"existing", os.O_PATH | os.O_CLOEXEC, 0, libc.RESOLVE_NO_MAGICLINKS)
    where = resolve.location(pinned)
    buf = ctypes.create_string_buffer(str(fname).encode())
    addr = ctypes.addressof(buf)
    me = os.getpid()
    _libc = ctypes.CDLL(None, use_errno=True)

    def t_status():
        target.Status(pid)

    def t_cwd():
        os.close(os.open(f"/proc/{pid}/cwd", resolve.O_PATH_DIR))

    def t_pin():
        os.close(libc.openat2(cwd, b"existing", os.O_PATH | os.O_CLOEXEC, 0, libc.RESOLVE_NO_MAGICLINKS))

    def t_pin_abs():
        os.close(libc.openat2(libc.AT_FDCWD, str(fname).encode(), os.O_PATH | os.O_CLOEXEC, 0, libc.RESOLVE_NO_MAGICLINKS))

    def t_pin_beneath():
        os.close(libc.openat2(proj_fd, rel_from_proj, os.O_PATH | os.O_CLOEXEC, 0,
                              libc.RESOLVE_BENEATH | libc.RESOLVE_NO_MAGICLINKS))

    def t_pin_missing():
        try:
            libc.openat2(cwd, b"missing", os.O_PATH | os.O_CLOEXEC, 0, libc.RESOLVE_NO_MAGICLINKS)
        except FileNotFoundError:
            pass

    def t_location():
        resolve.location(pinned)

    def t_fstat():
        os.fstat(pinned)

    def t_reopen():
        os.close(os.open(f"/proc/self/fd/{pinned}", os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY))

    def t_plain_open():
        os.close(os.open(str(fname), os.O_WRONLY | os.O_CLOEXEC))

    def t_readv():
        target.read_cstring(me, addr)

    def t_policy():
        policy.decide_write(pol, where, tgid=pid)

    def t_symlink_check():
        resolve.is_symlink_at(cwd, b"missing")

    def t_ctypes_syscall():
        _libc.syscall(39)  # getpid: the bare cost of one ctypes call into a syscall

    def t_ioctl_fail():
        try:
            libc.ioctl(pinned, 0x40082102, addr)  # an ioctl the fd rejects: the Python+ctypes+errno path
        except OSError:
            pass

    import contextlib

    @contextlib.contextmanager
    def cm():
        yield

    def t_contextmanager():
        with cm():
            pass

    cases = [
        ("read /proc/PID/status (target.Status)", t_status, "every request (Request.__init__ reads tgid, umask, creds)"),
        ("open /proc/TID/cwd O_PATH + close", t_cwd, "every relative path (Context.cwd_fd)"),
        ("openat2 pin, relative to cwd fd (+close)", t_pin, "every open of an existing file"),
        ("openat2 pin, absolute path (+close)", t_pin_abs, "absolute paths"),
        ("openat2 RESOLVE_BENEATH from cached project fd (+close)", t_pin_beneath, "proposal: replaces cwd open + pin"),
        ("openat2 pin of a missing name (ENOENT exception)", t_pin_missing, "every create (tries existing first)"),
        ("readlink /proc/self/fd/N (resolve.location)", t_location, "every checked object"),
        ("fstat of the pinned fd", t_fstat, "1-2x per open"),
        ("reopen /proc/self/fd/N for writing (+close)", t_reopen, "every open of an existing file"),
        ("plain open(path, O_WRONLY) (+close), for scale", t_plain_open, "-"),
        ("process_vm_readv of a path (read_cstring)", t_readv, "every path argument"),
        ("policy.decide_write", t_policy, "every check"),
        ("readlink of a missing name (is_symlink_at)", t_symlink_check, "every create"),
        ("ctypes call of a trivial syscall (getpid)", t_ctypes_syscall, "per ioctl: RECV, ID_VALID, SEND/ADDFD"),
        ("ctypes ioctl that fails (errno -> OSError)", t_ioctl_fail, "-"),
        ("empty @contextmanager with-block (as_target)", t_contextmanager, "every emulated call"),
    ]
    out = []
    try:
        for label, fn, where_used in cases:
            for _ in range(200):
                fn()
            best = []
            for _rep in range(3):
                t0 = time.perf_counter_ns()
                for _ in range(loops):
                    fn()
                best.append((time.perf_counter_ns() - t0) / loops / 1000.0)
            out.append({"op": label, "us": min(best), "used": where_used})
    finally:
        helper.kill()
        helper.wait()
        for fd in (proj_fd, cwd, pinned):
            os.close(fd)
    return out


# -- main -------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="micro,tar", help="micro,tar,git,compileall")
    ap.add_argument("--how", default="timing,cprofile,pyspy,primitives")
    ap.add_argument("--patch", default="", help="status_cache,location_cache,cwd_cache (timing runs only)")
    ap.add_argument("--micro-n", type=int, default=20000)
    ap.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    ap.add_argument("--dir", default=benchrun.DEFAULT_DIR)
    ap.add_argument("--clean", action="store_true", help="delete this run's outputs at the end")
    args = ap.parse_args(argv)
    # This profiles the Python handlers; the compiled hot path would answer
    # most requests inside one handle_one call (its cost per request is what
    # `peninsula run --verbose` prints).
    os.environ["PENINSULA_PURE_PYTHON"] = "1"
    RESULTS.mkdir(exist_ok=True)
    hows = [h for h in args.how.split(",") if h]
    patches = [p for p in args.patch.split(",") if p]
    setup = Setup(Path(args.dir), args.micro_n)
    report: dict = {"micro_n": args.micro_n, "patches": patches}
    text = []
    try:
        for w in [w for w in args.workload.split(",") if w]:
            if "timing" in hows:
                log(f"{w}: timing every request")
                info = run_in_process(setup, w, "timing", patches)
                summ = timing_summary(info, args.micro_n)
                report.setdefault("timing", {})[w] = summ
                text.append(f"== {w}: per-request timing{' with ' + '+'.join(patches) if patches else ''} ==")
                text.append(f"requests {summ['requests']}, handle_one: median wall {summ['median_us']:.1f} us, "
                            f"supervisor thread CPU median {summ['cpu_median_us']:.1f} us / mean {summ['cpu_mean_us']:.1f} us; "
                            f"handling {summ['handled_s']:.2f} s, waiting in poll {summ['waiting_s']:.2f} s, "
                            f"supervisor CPU {summ['cpu_s']:.2f} s, wall {summ['wall_s']:.2f} s")
                for k, v in summ["listener"].items():
                    text.append(f"  listener.{k:<9} {v['calls']:>7} calls, wall {v['us_per_call']:6.1f} us/call "
                                f"(CPU {v['cpu_us_per_call']:5.1f}), {v['us_per_request']:6.1f} us/request")
                for r in summ["by_syscall"][:10]:
                    text.append(f"  {r['syscall']:<12} {r['count']:>7}  wall median {r['median_us']:6.1f} us  "
                                f"p10 {r['p10_us']:6.1f}  p90 {r['p90_us']:6.1f}  CPU median {r['cpu_median_us']:6.1f} us")
            if "cprofile" in hows:
                log(f"{w}: cProfile")
                info = run_in_process(setup, w, "cprofile", patches)
                body, rows = cprofile_summary(info["out"] + ".pstats", info["requests"])
                Path(info["out"] + ".txt").write_text(body)
                report.setdefault("cprofile", {})[w] = {"requests": info["requests"], "top": rows[:40]}
                text.append(f"== {w}: cProfile ({info['out']}.txt) ==")
                text.append("\n".join(body.splitlines()[:22]))
            if "pyspy" in hows:
                log(f"{w}: py-spy")
                res = pyspy(setup, w, args.rate)
                report.setdefault("pyspy", {})[w] = res
                if "skipped" in res:
                    text.append(f"== {w}: py-spy skipped: {res['skipped']} ==")
                else:
                    text.append(f"== {w}: py-spy, {res['samples']} samples inside handle_one ({res['file']}) ==")
                    text.append("inclusive share:")
                    for f, n in res["inclusive"][:25]:
                        text.append(f"  {n / res['samples']:6.1%}  {f}")
                    text.append("leaf share:")
                    for f, n in res["leaf"][:15]:
                        text.append(f"  {n / res['samples']:6.1%}  {f}")
        if "primitives" in hows:
            log("unit costs of the primitives")
            prims = primitives(setup)
            report["primitives"] = prims
            text.append("== unit cost of each primitive (best of 3 x 20k loops, us) ==")
            for p in prims:
                text.append(f"  {p['us']:7.2f} us  {p['op']}  [{p['used']}]")
    finally:
        setup.finish(args.clean)
    suffix = "-" + "+".join(patches) if patches else ""
    (RESULTS / f"profile-summary{suffix}.json").write_text(json.dumps(report, indent=1, default=str))
    body = "\n".join(text) + "\n"
    (RESULTS / f"profile-summary{suffix}.txt").write_text(body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
