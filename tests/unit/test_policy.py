"""The pure policy engine (policy.py)."""

import pytest

from peninsula import policy

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
