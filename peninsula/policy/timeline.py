"""Which shell state judges which process (pure: no syscalls).

A process is judged by the shell's state in force when the shell started the
head of its line (the ancestor that is the shell's direct child). The kernel
records every start time in clock ticks, so a timeline of the shell's state
changes answers this without trapping fork. A change and a start inside the
same tick are ordered by pid when the kernel's allocation order tells;
otherwise they resolve to the stricter state.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class ShellState:
    """project: root of the project the shell is in (None: outside any).
    strict: the shell moved between projects and no prompt has confirmed
    where it is yet: only the temp dirs are writable.
    orphan (with strict): a process reparented before it was ever seen, so
    its line cannot be traced (its parent died by a signal: one that exits
    has its children judged first): strict, named apart in describe()."""

    project: str | None = None
    strict: bool = False
    orphan: bool = False

    @property
    def confined(self) -> bool:
        return self.strict or self.project is not None

    def describe(self) -> str:
        if self.orphan:
            return "strict (an orphan whose line was never seen)"
        if self.strict:
            return "strict (between projects until the next prompt)"
        return f"confined to {self.project}" if self.project else "not confined"


UNCONFINED = ShellState()
STRICT = ShellState(strict=True)
ORPHAN = ShellState(strict=True, orphan=True)


def stricter(a: ShellState, b: ShellState) -> ShellState:
    """The state that allows less. Two different projects allow the
    intersection of their roots, which only STRICT describes."""
    if a == b:
        return a
    if not a.confined:
        return b
    if not b.confined:
        return a
    return STRICT


def tighten(current: ShellState, entering: str | None) -> ShellState:
    """The state after the shell changes directory, before any prompt.

    Entering a project from outside confines at once. Moving from one
    project to another (or out) never lifts anything before the prompt.
    """
    if not current.confined:
        return ShellState(entering) if entering else current
    if entering is None or entering == current.project:
        return current  # leaving lifts nothing until the prompt confirms it
    return STRICT


# Pids are handed out in increasing order; within one tick a process whose
# pid is above the last pid allocated when the state changed was started
# after the change. Larger gaps could be a wrap-around: no conclusion.
PID_ORDER_WINDOW = 100_000


def _order(pid: int | None, last_pid: int | None) -> str:
    """'after', 'before' or 'unknown': pid against the change's last pid."""
    if pid is None or last_pid is None:
        return "unknown"
    if last_pid < pid <= last_pid + PID_ORDER_WINDOW:
        return "after"
    if last_pid - PID_ORDER_WINDOW < pid <= last_pid:
        return "before"
    return "unknown"


class Timeline:
    """The shell's states over time, in clock ticks since boot."""

    def __init__(self, initial: ShellState, tick: int = 0):
        self._ticks: list[int] = [tick]
        self._states: list[ShellState] = [initial]
        self._last_pids: list[int | None] = [None]

    @property
    def current(self) -> ShellState:
        return self._states[-1]

    def record(self, tick: int, state: ShellState, last_pid: int | None = None) -> None:
        """A change at tick; last_pid is the newest pid allocated when it
        took effect (None when unknown: ties then resolve to stricter)."""
        if state == self._states[-1]:
            return
        if tick < self._ticks[-1]:
            tick = self._ticks[-1]  # clocks never run backwards here
        self._ticks.append(tick)
        self._states.append(state)
        self._last_pids.append(last_pid)

    def at(self, tick: int, pid: int | None = None) -> ShellState:
        """The state for a process (pid) that the shell started at tick."""
        before = bisect.bisect_left(self._ticks, tick)  # first change at >= tick
        state = self._states[before - 1] if before > 0 else self._states[0]
        index = before
        while index < len(self._ticks) and self._ticks[index] == tick:
            order = _order(pid, self._last_pids[index])
            if order == "after":
                state = self._states[index]
            elif order == "unknown":
                state = stricter(state, self._states[index])
            index += 1
        return state

    def __len__(self) -> int:
        return len(self._ticks)

    def confined_since(self, index: int) -> bool:
        """Was any state in force from the index-th change on confined?"""
        return any(state.confined for state in self._states[index:])
