"""The devenv launcher inside a supervised shell applies its own rendered
policy (issue 14): it nests like `peninsula run`, instead of running the
script judged only by the shell's state."""

from test_nix import make_launcher, nix  # noqa: F401 (nix is a fixture)
from .conftest import supervised


def test_launcher_applies_its_policy_inside_a_session(nix, term_factory, home, user):  # noqa: F811
    project = home / "proj"
    user.mkdir(project / "src" / "generated")
    launcher, _ = make_launcher(nix, user, {"protect": ["src/generated"], "root": str(project)}, root=str(project))
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    term.run("echo control > src/generated/control")  # the project alone allows it
    assert (project / "src" / "generated" / "control").read_text() == "control\n"
    text = term.run(f"{launcher} sh -c 'echo in > inside; echo g > src/generated/g; echo gen=$?'")
    assert (project / "inside").read_text() == "in\n"
    assert not (project / "src" / "generated" / "g").exists()
    assert "gen=2" in text or "gen=1" in text
    assert "EBUSY" not in text
