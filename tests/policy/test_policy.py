"""The pure policy engine (peninsula/policy/engine.py)."""

import pytest

from peninsula.policy import engine as policy

POL = policy.Policy(
    writable=("/home/u/proj", "/tmp", "/home/u/.local/share/fish/fish_history*"),
    protected=("/home/u/proj/.git/hooks/*", "!/home/u/proj/.git/hooks/*.sample", "/home/u/proj/secret"),
)


@pytest.mark.parametrize(
    "path, allow",
    [
        ("/home/u/proj", True),
        ("/home/u/proj/a/b", True),
        ("/home/u/project-evil", False),  # a prefix is not a parent
        ("/home/u/.bashrc", False),
        ("/tmp/x", True),
        ("/home/u/proj/.git/hooks/pre-commit", False),
        ("/home/u/proj/.git/hooks/pre-commit.sample", True),
        ("/home/u/proj/.git/config", True),
        ("/home/u/proj/secret", False),
        ("/home/u/proj/secret/inner", False),
        ("/home/u/.local/share/fish/fish_history.tmp1", True),
        ("/home/u/.local/share/fish/fish_variables", False),
        ("/dev/null", True),
        ("/dev/pts/3", True),
        ("/dev/sda", False),
        ("relative/path", False),
        ("/proc/1/mem", False),
    ],
)
def test_decide_write(path, allow):
    assert policy.decide_write(POL, path).allow is allow


def test_own_proc_entries():
    assert policy.decide_write(POL, "/proc/42/comm", tgid=42).allow
    assert not policy.decide_write(POL, "/proc/43/comm", tgid=42).allow
    assert not policy.decide_write(POL, "/proc/420/comm", tgid=42).allow


def test_root_slash_is_everything():
    assert policy.is_beneath("/etc/passwd", "/")


def test_hardlinks_and_trace():
    assert policy.decide_hardlinked_write(POL, 1).allow
    assert not policy.decide_hardlinked_write(POL, 2).allow
    assert policy.decide_trace(10, [11, 10, 1]).allow
    assert not policy.decide_trace(10, [1]).allow


# A reference for protection_for, written the slow, obvious way: walk the
# patterns in order; the last one matching the path or an ancestor decides.
def _reference(protected, path):
    import fnmatch
    import posixpath

    def matches(pattern):
        probe = path
        while True:
            if fnmatch.fnmatchcase(probe, pattern) if any(c in pattern for c in "*?[") else probe == pattern:
                return True
            if probe == "/":
                return False
            probe = posixpath.dirname(probe)

    verdict = None
    for pattern in protected:
        if pattern.startswith("!"):
            if verdict is not None and matches(pattern[1:]):
                verdict = None
        elif matches(pattern):
            verdict = pattern
    return verdict


def test_protection_matches_reference():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    part = st.sampled_from(["a", "b", "c", "*", "a*", "?", ".git", "hooks", "x.sample", "*.sample"])
    pattern = st.builds(lambda neg, parts: ("!" if neg else "") + "/" + "/".join(parts), st.booleans(), st.lists(part, min_size=1, max_size=4))
    path = st.builds(lambda parts: "/" + "/".join(parts), st.lists(st.sampled_from(["a", "b", "c", ".git", "hooks", "x.sample", "ab"]), min_size=1, max_size=5))

    @settings(max_examples=400, deadline=None)
    @given(st.lists(pattern, max_size=6), path)
    def check(protected, target):
        pol = policy.Policy(writable=("/",), protected=tuple(protected))
        assert policy.protection_for(pol, target) == _reference(protected, target)

    check()


def test_landlock_expressible():
    base = ("/home/u/proj", "/tmp")
    assert policy.landlock_expressible(policy.Policy(writable=base, protected=("/home/u/.ssh", "/home/u/.bashrc")))
    assert not policy.landlock_expressible(policy.Policy(writable=base, protected=("/home/u/proj/secret",)))
    assert not policy.landlock_expressible(policy.Policy(writable=base, protected=("/home/u",)))  # around a root
    assert not policy.landlock_expressible(policy.Policy(writable=base, protected=("/home/u/proj/.git/hooks/*",)))
    assert not policy.landlock_expressible(policy.Policy(writable=base, protected=("/home/*/proj",)))
    assert not policy.landlock_expressible(policy.Policy(writable=base + ("/home/u/.h*",)))
