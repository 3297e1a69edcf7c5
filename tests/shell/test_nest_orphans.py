"""Inside a supervised shell, a nested run's command cannot kill its head to
have its orphans judged by the session's or a middle run's policy (review
2): the head scopes its command's signals with Landlock, and the session's
judge also traps kill() of a nest head (it did before the scope; this test
holds both in place). The controls: the same orphan without the kill is
refused, and the laxer layer alone does allow the target."""

from sandbox.test_nest_orphans import ORPHAN

from .conftest import supervised

RUN = "python3 -m peninsula run"


def test_head_kill_in_a_session_is_refused(term_factory, home, user):
    orphan = user.write(home / "orphan.py", ORPHAN)
    proj = home / "proj"
    user.mkdir(proj / "a")
    user.mkdir(proj / "a" / "b")
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    # one deep: the session's policy (the project) allows proj/escaped, the run's does not
    term.run(f"{RUN} --project {proj}/a/b -- python3 {orphan} {proj}/escaped 0")
    assert not (proj / "escaped").exists()
    term.run("echo ok > escaped-control")
    assert (proj / "escaped-control").read_text() == "ok\n"
    text = term.run(f"{RUN} --project {proj}/a/b -- python3 {orphan} {proj}/escaped 1", timeout=30)
    assert "C: kill head failed 1" in text, text
    assert "X: refused 13" in text and not (proj / "escaped").exists(), text
    # two deep: the middle run allows proj/a/escaped, the innermost does not
    target = proj / "a" / "escaped"
    two = f"{RUN} --project {proj}/a -- {RUN} --project {proj}/a/b --"
    term.run(f"{two} python3 {orphan} {target} 0", timeout=30)
    assert not target.exists()
    term.run(f"{RUN} --project {proj}/a -- sh -c 'echo ok > {target}'")
    assert target.read_text() == "ok\n"
    target.unlink()
    text = term.run(f"clear; {two} python3 {orphan} {target} 1", timeout=30)
    assert "C: kill head failed 1" in text, text
    assert "X: refused 13" in text and not target.exists(), text
