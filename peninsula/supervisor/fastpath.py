"""One face over the supervisor's two hot paths.

When `pip install` could compile peninsula/supervisor/_fastpath_c/ (a C compiler
and Python's headers were there), the common allowed writes of a confined
process are answered in C, for the syscalls the syscall table
(supervisor/table.py) lets it answer; everything else, every refusal included, comes
back to the Python handlers (supervisor/handlers/) untouched. Without the extension,
or with PENINSULA_PURE_PYTHON=1 in the supervisor's environment, every
request is handled in Python. Both paths pass the same engine tests.
"""

from __future__ import annotations

import os

from peninsula.policy import engine
from peninsula.supervisor import table

try:
    from peninsula.supervisor import _fastpath
except ImportError:  # not built: pure Python
    _fastpath = None

DISABLE = "PENINSULA_PURE_PYTHON"


def _in_use() -> bool:
    return _fastpath is not None and os.environ.get(DISABLE) != "1"


def state() -> str:
    """Which path serves requests, for `peninsula doctor`."""
    if _fastpath is None:
        return "pure Python (the compiled hot path was not built: no C compiler at install time)"
    if not _in_use():
        return f"pure Python ({DISABLE}=1)"
    return "compiled (peninsula.supervisor._fastpath), with Python for refusals and rare cases"


def engine_for(pol: engine.Policy | None):
    """A compiled engine for one fixed policy, or None (pure Python)."""
    return _fastpath.Engine(**spec(pol), handlers=table.compiled(trap_chdir=False)) if pol is not None and _in_use() else None


def engine_judged_by(judge):
    """A compiled engine for several policies, added as judge(tid) -> (slot,
    tgid) needs them (the shell session), or None (pure Python)."""
    return _fastpath.Engine(judge=judge, handlers=table.compiled(trap_chdir=True)) if _in_use() else None


def spec(pol: engine.Policy) -> dict:
    """The policy as the C engine reads it: plain roots, plain protections
    with their position (the last match wins) and whether they re-allow,
    the literal prefix of each glob protection (a write there goes to
    Python), and the device paths (always Python's). Every name of a state
    allowance goes to Python too (as a glob prefix that outranks every
    protection), even beneath a plain root: only Python knows which name
    changes a state file may undergo."""
    outranks = len(pol.protected)
    return dict(
        roots=[os.fsencode(root) for root in sorted(pol._plain_writable)],
        protect=[(os.fsencode(text), position, pol.protected[position].startswith("!"))
                 for text, position in pol._plain_protect.items()],
        globs=[(os.fsencode(prefix), position, False) for position, prefix, _ in pol._glob_protect]
        + [(os.fsencode(prefix), outranks, False) for allowance in pol.state for prefix in allowance.prefixes()],
        devices=[os.fsencode(dev) for dev in engine.DEVICE_WRITES],
        hardlinked_writes=pol.hardlinked_writes,
    )
