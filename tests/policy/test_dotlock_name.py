"""The names a dotlock allowance takes for gpg's temporary files: gpg's
exact form (".#lk0x" + hex + "." + node name + "." + pid, "x" for its link
probe), nothing the DOTLOCK_TEMP glob would also let through."""

import fnmatch

import pytest

from peninsula.policy import engine as policy

G = "/home/u/.gnupg"
GPG = policy.StateAllowance(f"{G}/random_seed", dotlocks=("pubring.kbx.lock",))
POL = policy.Policy(writable=("/home/u/proj",), protected=(G, "!" + f"{G}/{policy.DOTLOCK_TEMP}"), state=(GPG,))
TEMP = ".#lk0x000056029579b9d0.vm.25943"


@pytest.mark.parametrize("name", [TEMP, TEMP + "x", ".#lk0x55d0.build-01.example.org.7", ".#lk0xab.h_1.1"])
def test_gpgs_own_names(name):
    assert policy.DOTLOCK_TEMP_NAME.fullmatch(name)
    assert policy.decide_write(POL, f"{G}/{name}").allow


@pytest.mark.parametrize("name", [
    TEMP + "\n", TEMP + "x\n", ".#lk0xab.h\n.1", ".#lk0xab.h\t.1", ".#lk0xab.h .1", ".#lk0xab..1", ".#lk0x.h.1",
    ".#lk0xAB.h.1", ".#lk0xab.h.01", ".#lk0xab.h.1xx", ".#lk0xab.h.1y", ".#lk0xab.h.", ".#lk0xab.h",
])
def test_other_names(name):
    assert not policy.DOTLOCK_TEMP_NAME.fullmatch(name)
    assert not policy.decide_write(POL, f"{G}/{name}").allow


def test_the_glob_alone_let_a_newline_through():
    """Why the name is decided by the regex: the re-allowing glob matches it."""
    assert fnmatch.fnmatchcase(TEMP + "\n", policy.DOTLOCK_TEMP)
