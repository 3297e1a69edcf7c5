"""The orphan state (an orphan never seen, judge.state_of) is strict, but
allows more than strict between projects (config/project.py): where the two
meet, the stricter is plain strict."""

from peninsula.policy.timeline import ORPHAN, STRICT, UNCONFINED, ShellState, stricter


def test_the_orphan_state_is_strict_and_yields_to_strict_between_projects():
    assert ORPHAN.confined and ORPHAN.strict and ORPHAN != STRICT
    for other in (STRICT, ShellState("/a")):
        assert stricter(ORPHAN, other) == stricter(other, ORPHAN) == STRICT
    assert stricter(ORPHAN, UNCONFINED) == ORPHAN
    assert ORPHAN.describe() != STRICT.describe()
