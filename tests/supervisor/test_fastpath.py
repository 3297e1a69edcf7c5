"""The compiled hot path's policy check never allows what the Python
engine refuses, and allows the plain cases itself (so it is really used).

The C engine answers a write only when `allowed()` is true; everything else
goes to policy.decide_write. These tests hold the two side by side on
fixed cases and on generated paths."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peninsula.supervisor import fastpath
from peninsula.policy import engine as policy

pytestmark = pytest.mark.skipif(fastpath._fastpath is None, reason="the compiled hot path is not built here")

POL = policy.Policy(
    writable=("/home/u/proj", "/tmp", "/home/u/.local/share/fish/fish_history*", "/dev/shm"),
    protected=(
        "/home/u/proj/.git/hooks",
        "!/home/u/proj/.git/hooks/README",
        "/home/u/proj/secret",
        "/home/u/proj/keys/*.pem",
        "/tmp/held",
    ),
)


def engine(pol=POL):
    return fastpath._fastpath.Engine(**fastpath.spec(pol))


@pytest.mark.parametrize(
    "path, compiled",
    [
        ("/home/u/proj/a.c", True),
        ("/home/u/proj", True),
        ("/tmp/x/y", True),
        ("/dev/shm/sem.1", True),
        ("/home/u/projx/a", False),  # a prefix is not a parent
        ("/home/u/.bashrc", False),
        ("/home/u/proj/.git/hooks/pre-commit", False),  # protected: Python refuses
        ("/home/u/proj/.git/hooks/README", True),  # re-allowed by the later "!" rule
        ("/home/u/proj/secret/inner", False),
        ("/home/u/proj/keys/a.pem", False),  # a glob: always Python's
        ("/home/u/proj/keys/notes", False),  # beneath a glob's literal prefix: Python's
        ("/home/u/.local/share/fish/fish_history.x", False),  # a glob root: Python's
        ("/tmp/held", False),
        ("/tmp/held2", True),
        ("/dev/null", False),  # devices: Python's
        ("/proc/1/comm", False),
        ("/home/u/proj/a (deleted)", False),
        ("relative", False),
        ("", False),
    ],
)
def test_compiled_answers_only_plain_allowed_writes(path, compiled):
    eng = engine()
    assert eng.allowed(os.fsencode(path)) is compiled
    if compiled:
        assert policy.decide_write(POL, path).allow


def test_protection_of_the_whole_root_is_respected():
    pol = policy.Policy(writable=("/w",), protected=("/w",))
    assert not engine(pol).allowed(b"/w/x")
    assert not policy.decide_write(pol, "/w/x").allow


def test_root_slash():
    pol = policy.Policy(writable=("/",), protected=("/etc",))
    eng = engine(pol)
    assert eng.allowed(b"/home/a") and eng.allowed(b"/etcetera")
    assert not eng.allowed(b"/etc/passwd") and not eng.allowed(b"/etc")


NAMES = st.sampled_from(["home", "u", "proj", ".git", "hooks", "README", "secret", "keys", "a.pem", "tmp", "held",
                         "held2", "dev", "shm", "null", "proc", "x", "..", "."])


@settings(max_examples=3000, deadline=None)
@given(st.lists(NAMES, min_size=0, max_size=7))
def test_never_laxer_than_python(parts):
    path = "/" + "/".join(parts)
    eng = engine()
    if eng.allowed(os.fsencode(path)):
        assert policy.decide_write(POL, path).allow, path

