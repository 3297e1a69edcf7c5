"""policy/orphans.py: an orphan that started strictly before the first
tick anything in the session could be confined is unconfined; at that tick
(a tie) or later it is ORPHAN. The marks: the shell timeline's first
confined state and the earliest start of any process answered confined."""

from peninsula.policy.orphans import ConfinedAnswers, orphan_state
from peninsula.policy.timeline import ORPHAN, STRICT, UNCONFINED, ShellState, Timeline


def test_before_the_first_mark_unconfined_at_or_after_it_orphan():
    assert orphan_state(100, (None, None, None)) == UNCONFINED  # nothing was ever confined
    assert orphan_state(99, (100, None, 300)) == UNCONFINED
    assert orphan_state(100, (100, None, None)) == ORPHAN  # a tie is not earlier
    assert orphan_state(150, (300, 120, None)) == ORPHAN  # the earliest mark counts


def test_answers_mark_the_earliest_confined_start_and_keep_it():
    answers = ConfinedAnswers()
    answers[(10, 50)] = UNCONFINED
    answers[(11, 40)] = ORPHAN  # judged orphan: at or after a mark already, or beyond the session
    assert answers.earliest is None
    answers[(12, 90)] = ShellState("/p")
    answers[(13, 70)] = STRICT
    answers[(14, 80)] = ShellState("/q")
    assert answers.earliest == 70
    del answers[(13, 70)]  # pruned when it died: its orphans outlive it
    assert answers.earliest == 70


def test_the_timelines_first_confined_tick():
    timeline = Timeline(UNCONFINED, 10)
    assert timeline.first_confined() is None
    timeline.record(20, ShellState("/p"))
    timeline.record(30, UNCONFINED)
    timeline.record(40, STRICT)
    assert timeline.first_confined() == 20
