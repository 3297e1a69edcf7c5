"""--verbose reports which hot path answered: the compiled one answers the
plain allowed writes itself and hands refusals to Python; with
PENINSULA_PURE_PYTHON=1 Python answers everything, with the same results."""

import re

SCRIPT = r'''
import os, sys
out = sys.argv[1]
for i in range(50):
    with open(f"f{i}", "w") as handle:
        handle.write("x")
    os.chmod(f"f{i}", 0o600)
os.mkdir("d")
os.rename("f0", "d/f0")
os.unlink("f1")
try:
    open(out + "/nope", "w")
    print("ESCAPED")
except PermissionError:
    print("refused")
print(sorted(os.listdir("."))[:3])
'''


def _run(who, env=None):
    project = who.mkdir(who.base / "proj")
    outside = who.mkdir(who.base / "outside")
    script = who.write(who.base / "hot.py", SCRIPT)
    proc = who.peninsula("run", "--verbose", "--project", project, "--log", who.base / "denials.jsonl", "--",
                         "/usr/bin/python3", script, outside, cwd=project, env=env)
    counts = re.search(rb"(\d+) requests answered by the compiled hot path, (\d+) by Python", proc.stderr)
    assert counts, proc.stderr
    return proc, int(counts[1]), int(counts[2])


def test_compiled_path_answers_allowed_writes_and_python_refusals(who):
    proc, compiled, python = _run(who)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == ["refused", "['d', 'f10', 'f11']"]
    assert compiled >= 100, "the compiled hot path answered nothing: is peninsula/supervisor/_fastpath_c/ built?"
    assert python >= 1  # the refusal, with its notice
    assert b"denied open of" in proc.stderr


def test_pure_python_gives_the_same_results(who):
    proc, compiled, python = _run(who, env={"PENINSULA_PURE_PYTHON": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == ["refused", "['d', 'f10', 'f11']"]
    assert compiled == 0 and python >= 100
