"""Invariant 7: on a kernel without a feature, say exactly what is and is not
enforced, and refuse to run with less unless the user chose best effort.

A kernel without Landlock or without seccomp user-notify is simulated by a
wrapper that installs a seccomp filter making those syscalls fail with
ENOSYS (as on a kernel that lacks them), then execs peninsula."""

import pytest

WRAPPER = r'''
import errno, os, sys
import pyseccomp as sc
flt = sc.SyscallFilter(sc.ALLOW)
for name in sys.argv[1].split(","):
    flt.add_rule(sc.ERRNO(errno.ENOSYS), name)
flt.load()
os.execvp(sys.argv[2], sys.argv[2:])
'''

NO_LANDLOCK = "landlock_create_ruleset,landlock_add_rule,landlock_restrict_self"
NO_NOTIFY = "seccomp"


@pytest.fixture
def without(who):
    wrapper = who.write(who.base / "without.py", WRAPPER)

    def run(blocked, *args, cwd=None):
        return who.run(["/usr/bin/python3", wrapper, blocked, "/usr/bin/python3", "-m", "peninsula", *args], cwd=cwd)

    return run


def test_doctor_says_what_is_missing(without):
    plain = without("getpriority", "doctor")  # a harmless block: the control
    assert plain.returncode == 0, plain.stdout
    no_ll = without(NO_LANDLOCK, "doctor")
    assert no_ll.returncode == 1
    assert b"Landlock: not available" in no_ll.stdout
    assert b"with best_effort = true: writes checked by the supervisor, but NOT" in no_ll.stdout
    no_notify = without(NO_NOTIFY, "doctor")
    assert no_notify.returncode == 1
    assert b"seccomp user-notify: not available" in no_notify.stdout
    assert b"enforced: NOTHING" in no_notify.stdout


def test_run_refuses_without_landlock_unless_best_effort(without, who):
    project = who.mkdir(who.base / "proj")
    outside = who.mkdir(who.base / "outside")
    script = f"echo in > inside; echo out > {outside}/x"
    refused = without(NO_LANDLOCK, "run", "--", "sh", "-c", script, cwd=project)
    assert refused.returncode == 125
    assert b"refusing to run with weaker enforcement than promised: Landlock is not available" in refused.stderr
    assert not (project / "inside").exists()

    allowed = without(NO_LANDLOCK, "run", "--best-effort", "--log", who.base / "log", "--", "sh", "-c", script, cwd=project)
    assert allowed.returncode == 2, allowed.stderr  # sh's status for the refused redirection
    assert b"best effort: NOT enforced: Landlock is not available" in allowed.stderr
    assert (project / "inside").read_text() == "in\n"
    assert not (outside / "x").exists()  # the supervisor still refuses it
    assert b"denied open of " + str(outside / "x").encode() in allowed.stderr


def test_run_refuses_without_user_notify_even_best_effort(without, who):
    project = who.mkdir(who.base / "proj")
    for extra in ((), ("--best-effort",)):
        result = without(NO_NOTIFY, "run", *extra, "--", "sh", "-c", "echo in > inside", cwd=project)
        assert result.returncode == 125, result.stderr
        assert b"cannot install the sandbox" in result.stderr or b"user-notify" in result.stderr
        assert not (project / "inside").exists()
