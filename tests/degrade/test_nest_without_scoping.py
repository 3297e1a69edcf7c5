"""A nested run needs Landlock's signal scope (ABI 6): without it its command
could kill its head and have its orphans judged by the outer run's policy
(review 2). On a kernel without Landlock (simulated as in
test_kernel_features.py) nesting is refused in one line, even when both
runs chose best effort (which otherwise lets a run go without Landlock)."""

from .test_kernel_features import NO_LANDLOCK, without  # noqa: F401 (a fixture)

PY = "/usr/bin/python3"


def test_nesting_is_refused_without_signal_scoping(without, who):  # noqa: F811
    project = who.mkdir(who.base / "proj")
    nested = ["run", "--best-effort", "--", PY, "-m", "peninsula", "run", "--best-effort", "--", "sh", "-c", "echo in > inner"]
    # the control: with a harmless block the nested run runs its command
    plain = without("getpriority", *nested, cwd=project)
    assert plain.returncode == 0 and (project / "inner").read_text() == "in\n", plain.stderr
    (project / "inner").unlink()
    refused = without(NO_LANDLOCK, *nested, cwd=project)
    err = refused.stderr.decode()
    assert "cannot nest inside this peninsula run: this kernel's Landlock cannot scope signals" in err, err
    assert refused.returncode != 0 and not (project / "inner").exists(), err
