"""Setting another process's resource limits from inside the sandbox.

prlimit(RLIMIT_CPU) kills a process and RLIMIT_NOFILE cripples it, with no
signal sent (Landlock scopes signals, not this). A review killed a nested
run's head that way (its orphans then fell to the laxer run above) and
starved a supervisor. A confined process may set its own limits and its
descendants', and read anyone's."""

from __future__ import annotations

import json

from .helpers import PY

# Prints what each prlimit gave: ok, or the errno's name.
PROBE = """
import errno, json, os, resource, sys, time
def attempt(pid, new):
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, new) if new else resource.prlimit(pid, resource.RLIMIT_NOFILE)
        return "ok"
    except OSError as err:
        return errno.errorcode[err.errno]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
lower = (min(soft, 512), min(hard, 512))
# The worker judges its parent (this process, the same user's) and its child.
worker = os.fork()
if worker == 0:
    child = os.fork()
    if child == 0:
        time.sleep(3)
        os._exit(0)
    print(json.dumps({
        "parent_read": attempt(os.getppid(), None),
        "parent_set": attempt(os.getppid(), lower),
        "own": attempt(os.getpid(), lower),
        "child": attempt(child, lower),
    }), flush=True)
    os.kill(child, 9)
    os._exit(0)
os.waitpid(worker, 0)
"""

def _probe(proc) -> dict:
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def test_unconfined_every_route_works(who):
    # Positive control: the same user's process may set its parent's limits.
    proc = who.run([PY, "-c", PROBE])
    assert _probe(proc) == {"parent_read": "ok", "parent_set": "ok", "own": "ok", "child": "ok"}, proc.stderr


def test_confined_may_not_set_another_processes_limits(who):
    project = who.mkdir(who.base / "proj")
    proc = who.peninsula("run", "--project", project, "--", PY, "-c", PROBE, cwd=project)
    assert _probe(proc) == {"parent_read": "ok", "parent_set": "EPERM", "own": "ok", "child": "ok"}, proc.stderr
    assert "denied prlimit" in proc.stderr.decode(), proc.stderr


def test_a_nested_command_cannot_set_its_heads_limits(who):
    project = who.mkdir(who.base / "proj")
    inner = who.mkdir(project / "inner")
    proc = who.peninsula("run", "--project", project, "--", PY, "-m", "peninsula", "run", "--project", inner, "--",
                         PY, "-c", PROBE, cwd=project)
    assert _probe(proc)["parent_set"] == "EPERM", proc.stderr
