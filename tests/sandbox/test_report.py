"""--report: one JSON object per run that validates against the shipped
schema (peninsula/sandbox/report.schema.json), for every status."""

from __future__ import annotations

import json
import signal

import pytest

from .helpers import PY, load_schema, run_with_report, validate


def test_the_validator_rejects_bad_reports():
    schema = load_schema()
    good = {"status": "ok", "exit_code": 0, "signal": None, "start_time": 1.0, "start_time_iso": "2026-01-01T00:00:00Z",
            "real_time": 0.1, "user_time": 0.0, "system_time": 0.0, "max_rss_kb": 1, "denials": 0,
            "first_denials": [], "message": None, "returncode": 0}
    assert validate(good, schema) == []
    for key, bad in (("status", "fine"), ("exit_code", "0"), ("denials", -1), ("start_time_iso", "yesterday"),
                     ("first_denials", [{"pid": 1}]), ("signal", 0), ("extra", 1)):
        assert validate({**good, key: bad}, schema), key
    assert validate({k: v for k, v in good.items() if k != "status"}, schema)


def _check(report, **expect):
    assert report is not None
    assert validate(report, load_schema()) == [], report
    for key, value in expect.items():
        assert report[key] == value, (key, report)


def test_ok_and_nonzero(who):
    project = who.mkdir(who.base / "p")
    proc, report = run_with_report(who, "--", "true", cwd=project)
    _check(report, status="ok", exit_code=0, signal=None, returncode=0, denials=0)
    assert report["start_time"] > 1.7e9 and report["real_time"] > 0
    proc, report = run_with_report(who, "--", "sh", "-c", "exit 3", cwd=project)
    assert proc.returncode == 3
    _check(report, status="exited nonzero", exit_code=3, returncode=3)


def test_resource_usage(who):
    project = who.mkdir(who.base / "p")
    work = "import time\nx = bytearray(80 * 1024 * 1024)\nfor i in range(0, len(x), 4096): x[i] = 1\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    _, report = run_with_report(who, "--", PY, "-c", work, cwd=project)
    _check(report, status="ok")
    assert report["max_rss_kb"] > 80 * 1024
    assert report["user_time"] + report["system_time"] >= 0.3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
@pytest.mark.parametrize("pidns", [False, True], ids=["plain", "unshare-pid"])
def test_signaled(who, sig, pidns):
    """Also through the pid namespace, where the process outside it passes
    the command's death on (SIGKILL cannot be re-armed, only re-sent)."""
    project = who.mkdir(who.base / "p")
    extra = ["--unshare-pid"] if pidns else []
    proc, report = run_with_report(who, *extra, "--", "sh", "-c", f"kill -{sig.name[3:]} $$", cwd=project)
    assert proc.returncode == 128 + sig
    _check(report, status="signaled", signal=sig, exit_code=None, returncode=128 + sig)


def test_timed_out(who):
    project = who.mkdir(who.base / "p")
    proc, report = run_with_report(who, "--limit-walltime", "0.5", "--", "sleep", "30", cwd=project)
    assert proc.returncode == 124
    _check(report, status="timed out", returncode=124, signal=9)
    assert "wall-time" in report["message"]


@pytest.mark.parametrize("argv,code", [(["no-such-command-xyz"], 127), (["/etc/hostname"], 126)])
def test_setup_failed_for_the_command(who, argv, code):
    project = who.mkdir(who.base / "p")
    proc, report = run_with_report(who, "--", *argv, cwd=project)
    assert proc.returncode == code
    _check(report, status="setup failed", exit_code=code, returncode=code)
    assert argv[0] in report["message"]


def test_setup_failed_for_the_sandbox(who):
    """Refused before the start (an option the checks reject) or inside the
    supervisor (a limit the kernel refuses at setrlimit time, as root):
    either way a report, with peninsula's message, and 125."""
    project = who.mkdir(who.base / "p")
    proc, report = run_with_report(who, "--keep-env", "HOME", "--", "true", cwd=project)
    assert proc.returncode == 125
    _check(report, status="setup failed", exit_code=125, returncode=125)
    assert "--clear-env" in report["message"]
    proc, report = run_with_report(who, "--limit-nofile", str(2**40), "--", "true", cwd=project)
    assert proc.returncode == 125
    _check(report, status="setup failed", returncode=125)
    assert "--limit-nofile" in report["message"]


def test_denials_are_reported(who):
    project = who.mkdir(who.base / "p")
    outside = who.mkdir(who.base / "outside")
    script = "; ".join(f"echo x > {outside}/f{i}" for i in range(25)) + "; true"
    proc, report = run_with_report(who, "--quiet", "--", "sh", "-c", script, cwd=project)
    _check(report, status="ok", denials=25)
    assert len(report["first_denials"]) == 20
    first = report["first_denials"][0]
    assert first["path"] == f"{outside}/f0" and first["op"] == "open" and first["errno"] == "EACCES"
    assert first["comm"] == "sh"


def test_report_to_stderr(who):
    project = who.mkdir(who.base / "p")
    proc = who.peninsula("run", "--report", "-", "--", "sh", "-c", "echo out; exit 4", cwd=project)
    assert proc.returncode == 4 and proc.stdout == b"out\n"
    report = json.loads(proc.stderr[proc.stderr.index(b"{"):])
    _check(report, status="exited nonzero", exit_code=4)
