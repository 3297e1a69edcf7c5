"""Property: the supervisor's decision agrees with where the kernel writes.

For random small trees (dirs, files, symlinks relative and absolute, in and
out of the project, dangling, chained, looping) and one random operation
each, the operation is run unconfined on one copy of the tree and confined
on an identical copy:

- if the unconfined run changed anything outside the project, the confined
  one must fail (EACCES/EPERM) and change nothing at all;
- otherwise the confined run must give the same result and leave the same
  tree.

Cases are batched: one `peninsula run` of a small driver executes a whole
batch (each case in its own directory), so a few runs cover many cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from .conftest import SYSTEM_PYTHON, figure, no_traceback

DRIVER = r'''
import errno, json, os, sys
plan = json.load(open(sys.argv[1]))
out = []
for case in plan:
    os.chdir(case["proj"])
    op, args = case["op"], case["args"]
    try:
        if op == "creat":
            fd = os.open(args[0], os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, b"data")
            os.close(fd)
        elif op == "mkdir":
            os.mkdir(args[0], 0o755)
        elif op == "rename":
            os.rename(args[0], args[1])
        elif op == "link":
            os.link(args[0], args[1], follow_symlinks=False)
        elif op == "symlink":
            os.symlink(args[0], args[1])
        elif op == "unlink":
            os.unlink(args[0])
        elif op == "truncate":
            os.truncate(args[0], 3)
        elif op == "chmod":
            os.chmod(args[0], 0o600)
        out.append("OK")
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print("RESULT " + json.dumps(out), flush=True)
'''

# Placeholders, rendered per case: {P} and {O} are the case's project and
# outside dirs (absolute), {RO} and {RP} the relative way from the case's
# project dir to them (out through the parent and back).
P, O, RO, RP = "{P}", "{O}", "{RO}", "{RP}"
NAMES = ["f", "d", "d/g", "l1", "l2", "d/l3", "new", "d/new", "l1/new", "l2/x", "l1/g", "nonexist/x"]
ONAMES = ["of", "od", "od/og", "ol", "new", "od/new"]
LINK_TARGETS = [
    "f", "d", "d/g", "l1", "l2", "nonexist", f"{RP}/f", f"{RP}/d",           # inside, relative (some via ..)
    f"{P}/f", f"{P}/d", f"{P}/new",                                          # inside, absolute
    f"{RO}/of", RO, f"{RO}/od", f"{RO}/new",                                 # outside, relative
    f"{O}/of", f"{O}/od", f"{O}/new", f"{RO}/od/../of",                      # outside, absolute, dangling
    "self",                                                                  # a loop
]
OUT_LINK_TARGETS = ["of", f"{P}/f", f"{P}/d", f"{P}/new", "od"]

tree = st.fixed_dictionaries({
    "dirs": st.sets(st.sampled_from(["d"])),
    "files": st.sets(st.sampled_from(["f", "d/g"]), min_size=1),
    "links": st.dictionaries(st.sampled_from(["l1", "l2", "d/l3", "self"]), st.sampled_from(LINK_TARGETS),
                             min_size=1, max_size=3),
    "odirs": st.sets(st.sampled_from(["od"])),
    "ofiles": st.sets(st.sampled_from(["of", "od/og"]), min_size=1),
    "olinks": st.dictionaries(st.sampled_from(["ol"]), st.sampled_from(OUT_LINK_TARGETS), max_size=1),
})


def path_strategy():
    inside = st.sampled_from(NAMES).flatmap(lambda n: st.sampled_from([n, f"{P}/{n}", f"./{n}", f"{RP}/{n}"]))
    outside = st.sampled_from(ONAMES).flatmap(lambda n: st.sampled_from([f"{RO}/{n}", f"{O}/{n}"]))
    return st.one_of(inside, inside, outside)


op = st.one_of(
    st.tuples(st.sampled_from(["creat", "mkdir", "unlink", "truncate", "chmod"]), st.tuples(path_strategy())),
    st.tuples(st.sampled_from(["rename", "link"]), st.tuples(path_strategy(), path_strategy())),
    st.tuples(st.just("symlink"), st.tuples(st.sampled_from(LINK_TARGETS), path_strategy())),
)
case = st.tuples(tree, op)


class Case:
    def __init__(self, top: Path, i: int):
        self.proj = top / "proj" / f"c{i}"
        self.outside = top / "outside" / f"c{i}"
        self.subs = {P: str(self.proj), O: str(self.outside), RO: f"../../outside/c{i}", RP: f"../../proj/c{i}"}

    def render(self, text: str) -> str:
        for key, value in self.subs.items():
            text = text.replace(key, value)
        return text

    def build(self, lay, spec: dict) -> None:
        proj, outside = lay.dir(self.proj), lay.dir(self.outside)
        for d in sorted(spec["dirs"] | {p.rsplit("/", 1)[0] for p in spec["files"] | set(spec["links"]) if "/" in p}):
            lay.dir(proj / d)
        for f in sorted(spec["files"]):
            lay.file(proj / f, f"inside {f}\n")
        for name, target in sorted(spec["links"].items()):
            os.symlink(name if target == "self" else self.render(target), proj / name)
            os.lchown(proj / name, lay.who.uid, lay.who.gid)
        for d in sorted(spec["odirs"] | {p.rsplit("/", 1)[0] for p in spec["ofiles"] if "/" in p}):
            lay.dir(outside / d)
        for f in sorted(spec["ofiles"]):
            lay.file(outside / f, f"outside {f}\n")
        for name, target in sorted(spec["olinks"].items()):
            os.symlink(self.render(target), outside / name)
            os.lchown(outside / name, lay.who.uid, lay.who.gid)

    def state(self) -> tuple[dict, dict]:
        return self._state(self.proj), self._state(self.outside)

    def _state(self, root: Path) -> dict:
        """The tree under root without times; absolute link texts made
        relative to the case (so twins compare equal)."""
        out = {}
        for dirpath, dirs, files in os.walk(root):
            names = ([""] if dirpath == str(root) else []) + dirs + files
            for name in names:
                full = os.path.join(dirpath, name) if name else dirpath
                info = os.lstat(full)
                kind = stat.S_IFMT(info.st_mode)
                entry = (kind, stat.S_IMODE(info.st_mode))
                if stat.S_ISREG(info.st_mode):
                    entry += (info.st_nlink, hashlib.sha256(Path(full).read_bytes()).hexdigest()[:12])
                elif stat.S_ISLNK(info.st_mode):
                    # (a hard link to a symlink changes its link count)
                    text = os.readlink(full).replace(str(self.proj), P).replace(str(self.outside), O)
                    entry += (info.st_nlink, text)
                out[os.path.relpath(full, root)] = entry
        return out


COUNTER = [0]


def run_batch(lay, cases) -> dict:
    COUNTER[0] += 1
    top = lay.dir(lay.base / f"prop{COUNTER[0]}")
    twins = {}
    plans = {}
    for kind in ("ctl", "box"):
        lay.dir(top / kind / "proj")
        lay.dir(top / kind / "outside")
        twins[kind] = [Case(top / kind, i) for i in range(len(cases))]
        plans[kind] = []
        for c, (spec, (name, args)) in zip(twins[kind], cases):
            c.build(lay, spec)
            plans[kind].append({"proj": str(c.proj), "op": name, "args": [c.render(a) for a in args]})
    driver = lay.script(DRIVER, "prop_driver.py")
    files = {kind: lay.script(json.dumps(plans[kind]), f"plan-{COUNTER[0]}-{kind}.json") for kind in plans}
    before = [c.state() for c in twins["box"]]
    assert before == [c.state() for c in twins["ctl"]]
    ctl = lay.plain([SYSTEM_PYTHON, driver, files["ctl"]], cwd=top / "ctl" / "proj")
    assert ctl.returncode == 0, ctl.stderr
    box = lay.run([SYSTEM_PYTHON, driver, files["box"]], project=top / "box" / "proj", timeout=120)
    no_traceback(box)
    assert box.returncode == 0, box.stderr[-3000:]
    ctl_results = json.loads(next(l for l in ctl.stdout.decode().splitlines() if l.startswith("RESULT "))[7:])
    box_results = json.loads(next(l for l in box.stdout.decode().splitlines() if l.startswith("RESULT "))[7:])
    problems = []
    tally = {"escape_attempts": 0, "inside": 0, "failing": 0}
    for i, (c_ctl, c_box) in enumerate(zip(twins["ctl"], twins["box"])):
        spec, (name, args) = cases[i]
        (in0, out0), (in_ctl, out_ctl), (in_box, out_box) = before[i], c_ctl.state(), c_box.state()
        what = f"case {i}: {name}{tuple(args)} on {spec}: unconfined {ctl_results[i]}, confined {box_results[i]}"
        if out_ctl != out0:
            tally["escape_attempts"] += 1
            # (a link of a file from outside into the project: EXDEV, names.CROSS_BOUNDARY)
            if box_results[i] not in ("EACCES", "EPERM") + (("EXDEV",) if name == "link" else ()):
                problems.append(what + " -- should have been refused (it writes outside)")
            if (in_box, out_box) != (in0, out0):
                problems.append(what + " -- refused, yet changed " + ("outside" if out_box != out0 else "the project"))
                if out_box != out0:
                    figure("escapes", 1)
        elif ctl_results[i] == "OK" and in_ctl == in0:
            # it worked and changed nothing (rename of a file onto itself):
            # a refusal is fine, as long as nothing changes
            tally["failing"] += 1
            if box_results[i] not in ("OK", "EACCES", "EPERM") or (in_box, out_box) != (in0, out0):
                problems.append(what + " -- a no-op that did something else")
        elif ctl_results[i] == "OK":
            tally["inside"] += 1
            if box_results[i] != "OK":
                problems.append(what + " -- should have worked (it writes only inside)")
            elif in_box != in_ctl or out_box != out_ctl:
                problems.append(what + f" -- trees differ: {in_box} vs {in_ctl}")
        else:
            # it fails without peninsula: it must fail under it too (with the
            # same errno, or a refusal when it names something outside) and
            # change nothing
            tally["failing"] += 1
            if box_results[i] != ctl_results[i] and box_results[i] not in ("EACCES", "EPERM"):
                problems.append(what + " -- a different error")
            if (in_box, out_box) != (in0, out0):
                problems.append(what + " -- failed, yet changed something")
    figure("writes_checked", tally["inside"])
    figure("denials_checked", tally["escape_attempts"])
    return tally, problems


TALLY = {"escape_attempts": 0, "inside": 0, "failing": 0}


def test_decisions_agree_with_the_kernel(lay, stress):
    # CI runs a fixed set of examples (stable); --stress draws new ones.
    @settings(max_examples=40 if stress else 4, deadline=None, database=None, derandomize=not stress,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(case, min_size=20, max_size=20))
    def batches(cases):
        tally, found = run_batch(lay, cases)
        problems.extend(found)
        for key in tally:
            TALLY[key] += tally[key]

    # Every batch runs (no shrinking: each case is reported on its own).
    problems: list[str] = []
    batches()
    print("property tally", lay.who.name, TALLY)
    assert not problems, f"{len(problems)} disagreements:\n" + "\n".join(problems)
    assert TALLY["escape_attempts"] > 0 and TALLY["inside"] > 0


LINK_ORDER = r'''
import errno, json, os, sys
os.chdir(sys.argv[1])
res = {}
for name, old, new in (("old_missing_new_notdir", "d/new", "l1/g"), ("old_loop_new_missing", "loop/x", "nodir/x")):
    try:
        os.link(old, new)
        res[name] = "OK"
    except OSError as e:
        res[name] = errno.errorcode[e.errno]
print("RESULT " + json.dumps(res))
'''


def test_link_reports_the_old_path_error_first(lay):
    """link() resolves the old path before the new one, so when both are
    bad the caller sees the old path's error (found by the property test)."""
    script = lay.script(LINK_ORDER, "link_order.py")
    results = {}
    for kind in ("control", "confined"):
        proj = lay.dir(lay.base / f"lo-{kind}")
        lay.dir(proj / "d")
        lay.file(proj / "f", "f\n")
        os.symlink("f", proj / "l1")
        os.symlink("loop", proj / "loop")
        proc = lay.plain([SYSTEM_PYTHON, script, proj]) if kind == "control" else lay.run([SYSTEM_PYTHON, script, proj], project=proj)
        results[kind] = json.loads(next(l for l in proc.stdout.decode().splitlines() if l.startswith("RESULT "))[7:])
    assert results["control"] == {"old_missing_new_notdir": "ENOENT", "old_loop_new_missing": "ELOOP"}
    assert results["confined"] == results["control"]
