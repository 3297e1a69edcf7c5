"""Timeline.confined_since: was the shell confined at any time since a mark
(exec_guard.py asks it at a ping whose shell runs another program)?"""

import itertools

from peninsula.policy.timeline import STRICT, UNCONFINED, ShellState, Timeline

A = ShellState("/a")


def test_every_history():
    for history in itertools.product((UNCONFINED, STRICT, A), repeat=3):
        timeline = Timeline(UNCONFINED, 0)
        for tick, state in enumerate(history, 1):
            timeline.record(tick, state)
        states = [UNCONFINED, *history]
        for mark in range(len(timeline)):
            # record() keeps one entry per change: rebuild what was in force from the mark on
            in_force = [UNCONFINED]
            for state in history:
                if state != in_force[-1]:
                    in_force.append(state)
            assert timeline.confined_since(mark) == any(s.confined for s in in_force[mark:]), (history, mark)
        assert timeline.confined_since(len(timeline) - 1) == timeline.current.confined
        assert timeline.confined_since(0) == any(s.confined for s in states)


def test_a_lift_starts_a_clean_mark():
    timeline = Timeline(A, 0)
    timeline.record(5, UNCONFINED)
    assert timeline.confined_since(0)
    assert not timeline.confined_since(len(timeline) - 1)  # the mark exec_guard sets after a lift
    timeline.record(6, A)
    assert timeline.confined_since(1)
