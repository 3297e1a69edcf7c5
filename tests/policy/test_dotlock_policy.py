"""gpg's lock files and trust database in a protected ~/.gnupg
(StateAllowance.dotlocks, defaults.state_exceptions)."""

import pytest

from peninsula.policy import engine as policy

G = "/home/u/.gnupg"
GPG = policy.StateAllowance(f"{G}/trustdb.gpg", dotlocks=("pubring.kbx.lock", "trustdb.gpg.lock"))
OTHER = policy.StateAllowance("/home/u/.bash_history", (".bash_history-[0-9]*.tmp",))
REALLOW = tuple("!" + f"{G}/{n}" for n in ("trustdb.gpg", "pubring.kbx.lock", "trustdb.gpg.lock", policy.DOTLOCK_TEMP))
POL = policy.Policy(writable=("/home/u/proj", "/tmp"), protected=(G, *REALLOW), state=(GPG, OTHER))
TEMP = f"{G}/.#lk0x000056029579b9d0.vm.25943"


@pytest.mark.parametrize("path, allow", [
    (TEMP, True), (TEMP + "x", True), (f"{G}/trustdb.gpg", True), (f"{G}/pubring.kbx.lock", True),
    (f"{G}/gpg.conf", False), (f"{G}/gpg-agent.conf", False), (f"{G}/pubring.kbx", False), (f"{G}/pubring.kbx~", False),
    (f"{G}/.#lk0x00ab.h.1/gpg.conf", False),  # beneath a temp name: not a name of the allowance
    (f"{G}/.#lk0xzz.h.1", False),  # not dotlock's shape
])
def test_only_gpgs_own_names_are_writable(path, allow):
    assert policy.decide_write(POL, path).allow is allow


@pytest.mark.parametrize("op, path, allow", [
    ("mknod", TEMP, True), ("unlink", TEMP, True), ("symlink", TEMP, False), ("mkdir", TEMP, False),
    ("mknod-special", TEMP, False),
    ("unlink", f"{G}/pubring.kbx.lock", True), ("mknod", f"{G}/pubring.kbx.lock", False),
    ("symlink", f"{G}/pubring.kbx.lock", False), ("mkdir", f"{G}/pubring.kbx.lock", False),
    ("symlink", f"{G}/trustdb.gpg", False), ("link", f"{G}/trustdb.gpg", False),
])
def test_name_changes(op, path, allow):
    assert policy.decide_name_change(POL, op, path).allow is allow


@pytest.mark.parametrize("old, new, allow", [
    (TEMP, f"{G}/pubring.kbx.lock", True),  # dotlock's lock
    (TEMP, TEMP + "x", True),  # its probe of link support
    ("/home/u/proj/evil", f"{G}/pubring.kbx.lock", False),  # a foreign file at the lock name
    ("/home/u/proj/evil", TEMP, False),
    (f"{G}/pubring.kbx.lock", TEMP, False),
    (TEMP, "/home/u/proj/out", False),  # gpg's file given a name elsewhere
    (TEMP, "/home/u/.bash_history-1.tmp", False),
])
def test_links(old, new, allow):
    assert policy.decide_link(POL, old, new).allow is allow


def test_links_elsewhere_are_not_its_business():
    assert policy.decide_link(POL, "/home/u/proj/a", "/home/u/proj/b") is None


@pytest.mark.parametrize("old, new", [
    (TEMP, f"{G}/gpg.conf"), (TEMP, f"{G}/trustdb.gpg"), (TEMP, f"{G}/pubring.kbx.lock"),
    ("/home/u/proj/evil", f"{G}/trustdb.gpg"), (f"{G}/trustdb.gpg", "/home/u/proj/t"),
])
def test_renames_are_refused(old, new):
    assert policy.decide_rename(POL, old, new, False).allow is False


def test_the_fast_path_hands_every_name_to_python():
    prefixes = GPG.prefixes()
    for name in (TEMP, f"{G}/pubring.kbx.lock", f"{G}/trustdb.gpg.lock", f"{G}/trustdb.gpg"):
        assert any(name.startswith(p) for p in prefixes), name


@pytest.mark.parametrize("name, allow", [
    ("trustdb.gpg", False), ("random_seed", True), ("pubring.kbx.lock", True), (".#lk0x00ab.h.1", True),
    ("gpg.conf", False), ("gpg-agent.conf", False), ("scdaemon.conf", False), ("common.conf", False),
    ("dirmngr.conf", False), ("pubring.kbx", False), ("pubring.kbx~", False), ("S.gpg-agent", False),
    ("private-keys-v1.d/x.key", False), ("random_seed.tmp", False),
])
def test_the_shipped_project_policies(tmp_path, monkeypatch, name, allow):
    from peninsula.config import project
    from peninsula.config.user import UserConfig

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".gnupg").mkdir()
    path = str(tmp_path.resolve() / ".gnupg" / name)
    assert policy.decide_write(project.strict_policy(UserConfig()), path).allow is allow


def test_a_symlinked_name_is_not_reallowed(tmp_path, monkeypatch):
    """The protections are resolved: a symlink at random_seed would re-allow its target."""
    from peninsula.config import defaults

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".gnupg").mkdir()
    (tmp_path / ".gnupg" / "random_seed").symlink_to(tmp_path / ".bashrc")
    exceptions = defaults.state_exceptions()
    assert not any(e.endswith("/random_seed") for e in exceptions) and any(e.endswith("/pubring.kbx.lock") for e in exceptions)
