"""Project config and trust: allowances apply only once trusted, protections
always; a broken config keeps the last good policy and says where."""

from .conftest import supervised


def test_project_config_applies_only_when_trusted(term_factory, home, user):
    user.mkdir(home / "out" / "shared")
    user.write(home / "proj" / ".peninsula.toml", 'write = ["../out/shared"]\nprotect = ["private"]\n')
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    text = term.run("echo a > ../out/shared/a; echo p > private")
    assert "is not trusted: its allowances are ignored" in text
    assert not (home / "out" / "shared" / "a").exists()
    assert not (home / "proj" / "private").exists()  # protections apply untrusted

    term.run("cd ..")
    text = term.run("python3 -m peninsula trust proj")
    assert "trusted " + str(home / "proj" / ".peninsula.toml") in text
    term.run("cd proj")
    term.run("echo b > ../out/shared/b; echo p > private")
    assert (home / "out" / "shared" / "b").read_text() == "b\n"
    assert not (home / "proj" / "private").exists()

    # A confined process may edit the config, but the edit is not trusted:
    # the allowances it had are gone until the user trusts it again.
    term.run("echo 'write = [\"../out\"]' > .peninsula.toml")
    term.prompt()
    term.run("echo c > ../out/shared/c; echo d > ../out/d")
    assert not (home / "out" / "shared" / "c").exists()
    assert not (home / "out" / "d").exists()


def test_marker_file_makes_a_project(term_factory, home, user):
    marked = user.mkdir(home / "marked")
    user.write(marked / ".peninsula.toml", "")
    term = term_factory("bash")
    supervised(term)
    term.run("cd marked")
    term.run("echo x > ../out/from-marked; echo y > inside")
    assert not (home / "out" / "from-marked").exists()
    assert (marked / "inside").exists()


def test_broken_user_config_keeps_last_good_policy(term_factory, home, user):
    term = term_factory("bash")
    supervised(term)
    config = home / ".config" / "peninsula" / "config.toml"
    good = config.read_text()
    user.write(config, good + "write = [\n")
    term.run("cd proj")
    text = term.run("echo x > ../out/x")
    assert str(config) + ":" in text
    assert "keeping the previous configuration" in text
    assert not (home / "out" / "x").exists()
    user.write(config, good + 'write = ["' + str(home / "out") + '"]\n')
    term.prompt()
    term.run("echo y > ../out/y")
    assert (home / "out" / "y").exists()
