"""An orphan of the session: a process reparented to the session's
subreaper (`peninsula shell`) before its first trapped call, so its line
cannot be traced (a server that daemonizes: fork, setsid, fork; the middle
one exits). judge.state_of asks orphan_state.

Every process of the session descends from the shell or joined it, and
each rule that confines a process (the shell's timeline, a process that
walks into a project, a join, a nested run) confines it from a clock tick
on: the shell's children started at or after its first confined state, or
the process it names and all it starts, which cannot have started before
that process did. So an orphan that started strictly before the earliest
of these ticks descends from no confined process: had its line been seen,
every rule would have judged it unconfined, and it is. One that started
at that tick or later may come from a confined line: strict (ORPHAN), as
the session cannot tell which. Start times are the kernel's (/proc/PID/
stat, read with the pid; a reused pid only starts later, never earlier).
"""

from __future__ import annotations

from peninsula.policy.timeline import ORPHAN, UNCONFINED, ShellState


class ConfinedAnswers(dict):
    """A judge's answers, (pid, start tick) -> state, that remember the
    earliest start tick of any process ever answered confined, after its
    entry is pruned (its orphans outlive it). ORPHAN itself marks nothing:
    an orphan of the session is ORPHAN only when it started at or after
    the mark already, and a process judged beyond the session (a signal's
    receiver or a control caller in another terminal, walked up to init)
    starts no line in it."""

    def __init__(self):
        super().__init__()
        self.earliest: int | None = None

    def __setitem__(self, key: tuple[int, int], state) -> None:
        if state.confined and state != ORPHAN and (self.earliest is None or key[1] < self.earliest):
            self.earliest = key[1]
        super().__setitem__(key, state)


def orphan_state(start: int, marks) -> ShellState:
    """The state of an orphan that started at tick start, given the ticks
    from which processes of the session were confined (None: never)."""
    known = [mark for mark in marks if mark is not None]
    if not known or start < min(known):
        return UNCONFINED
    return ORPHAN  # a tie in one tick is not earlier
