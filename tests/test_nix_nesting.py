"""The devenv launcher inside a plain `peninsula run` (issue 14): it nests,
so the rendered policy applies there too, on top of the outer run's."""

from __future__ import annotations

from test_nix import SYSTEM_PYTHON, make_launcher, nix  # noqa: F401 (nix: the fixture)


def test_launcher_inside_a_run_applies_its_policy(nix, who):  # noqa: F811
    project = who.mkdir(who.base / "proj")
    outside = who.mkdir(who.base / "outside")
    launcher, _ = make_launcher(nix, who, {"log": str(who.base / "denials.jsonl")}, root=str(project))
    script = f"echo in > {project}/inner; echo out > {outside}/x; echo out=$?"
    outer = [SYSTEM_PYTHON, "-m", "peninsula", "run", "--write", outside, "--"]
    proc = who.run([*outer, launcher, "sh", "-c", script], cwd=project, timeout=60)
    assert b"EBUSY" not in proc.stderr and (project / "inner").exists(), proc.stderr
    assert not (outside / "x").exists() and b"out=0" not in proc.stdout, proc.stderr
    assert f"denied open of {outside}/x".encode() in proc.stderr and b"of this nested run" in proc.stderr
    # the control: the outer run alone lets it write there
    proc = who.run([*outer, "sh", "-c", script], cwd=project, timeout=60)
    assert (outside / "x").exists() and b"out=0" in proc.stdout, proc.stderr
