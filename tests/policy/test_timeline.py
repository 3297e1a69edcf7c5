"""Which shell state judges which process (timeline.py), exhaustively."""

import itertools

from peninsula.policy.timeline import STRICT, UNCONFINED, ShellState, Timeline, stricter, tighten

A, B = ShellState("/a"), ShellState("/b")
STATES = (UNCONFINED, STRICT, A, B)


def test_stricter_never_lifts():
    for x, y in itertools.product(STATES, STATES):
        result = stricter(x, y)
        assert result == stricter(y, x)
        if x.confined or y.confined:
            assert result.confined
        if x.confined and y.confined and x != y:
            assert result == STRICT


def test_tighten_never_lifts_before_the_prompt():
    assert tighten(UNCONFINED, "/a") == A
    assert tighten(UNCONFINED, None) == UNCONFINED
    assert tighten(A, None) == A  # leaving: still A until the prompt
    assert tighten(A, "/a") == A
    assert tighten(A, "/b") == STRICT  # between projects: only temp dirs
    assert tighten(STRICT, "/a") == STRICT
    for state in STATES:
        for entering in (None, "/a", "/b"):
            if state.confined:
                assert tighten(state, entering).confined


def test_processes_are_judged_by_their_start():
    line = Timeline(UNCONFINED, 100)
    line.record(200, A)
    line.record(300, UNCONFINED)
    assert line.at(150) == UNCONFINED
    assert line.at(250) == A
    assert line.at(350) == UNCONFINED
    assert line.at(50) == UNCONFINED


def test_same_tick_without_pid_order_is_stricter():
    line = Timeline(A, 100)
    line.record(200, UNCONFINED)  # lifted at tick 200
    assert line.at(200) == A
    assert line.at(201) == UNCONFINED


def test_same_tick_ordered_by_pid():
    line = Timeline(A, 100)
    line.record(200, UNCONFINED, last_pid=5000)
    assert line.at(200, pid=5001) == UNCONFINED  # started after the lift
    assert line.at(200, pid=4999) == A  # started before it
    assert line.at(200, pid=5000 + 200_000) == A  # too far: maybe wrapped
    line.record(200, B, last_pid=5003)
    assert line.at(200, pid=5002) == UNCONFINED
    assert line.at(200, pid=5004) == B


def test_clock_never_runs_backwards():
    line = Timeline(UNCONFINED, 100)
    line.record(90, A)
    assert line.at(99) == UNCONFINED
    assert line.at(100) == A  # tie at 100: stricter
    assert line.current == A
