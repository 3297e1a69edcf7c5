"""The first promise, end to end: inside works, outside is refused and told."""


def test_write_inside_works_outside_is_denied(who):
    project = who.mkdir(who.base / "proj")
    outside = who.mkdir(who.base / "outside")
    proc = who.peninsula(
        "run", "--log", who.base / "log.jsonl", "--",
        "sh", "-c", f"echo in > inside && echo out > {outside}/x; echo rc=$?",
        cwd=project,
    )
    assert proc.returncode == 0, proc.stderr
    assert (project / "inside").read_text() == "in\n"
    assert not (outside / "x").exists()
    assert b"rc=2" in proc.stdout
    assert f"denied open of {outside}/x by sh".encode() in proc.stderr
