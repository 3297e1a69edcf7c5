"""State allowances (policy.StateAllowance): contents only, names as the tool needs."""

import pytest

from peninsula.supervisor import fastpath
from peninsula.policy import engine as policy

HOME = "/home/u"
STATE = (
    policy.StateAllowance(f"{HOME}/.bash_history", (".bash_history-[0-9]*.tmp",)),
    policy.StateAllowance(f"{HOME}/.zsh_history", (".zsh_history.new",), (".zsh_history.LOCK",)),
    policy.StateAllowance(f"{HOME}/.lesshst", (".lesshsQ",)),
    policy.StateAllowance(f"{HOME}/.local/state/nvim/swap", directory=True),
)
POL = policy.Policy(writable=(f"{HOME}/proj", "/tmp"), protected=(f"{HOME}/.bashrc",), state=STATE)
# The user made the whole home writable: the state rule still holds there.
WIDE = policy.Policy(writable=(HOME,), protected=(f"{HOME}/.bashrc",), state=STATE)


@pytest.mark.parametrize("pol", [POL, WIDE])
@pytest.mark.parametrize(
    "op, name, allow",
    [
        ("unlink", ".bash_history", True),  # vim unlinks .viminfo before its rename
        ("symlink", ".bash_history", False),
        ("link", ".bash_history", False),
        ("mkdir", ".bash_history", False),
        ("mknod-special", ".bash_history", False),
        ("mknod", ".bash_history", True),
        ("symlink", ".bash_history-123.tmp", False),
        ("unlink", ".bash_history-123.tmp", True),
        ("symlink", ".lesshsQ", False),
        ("symlink", ".zsh_history.LOCK", True),  # zsh's lock: a symlink it only reads back
        ("link", ".zsh_history.LOCK", False),
        ("mkdir", ".local/state/nvim/swap", True),
        ("rmdir", ".local/state/nvim/swap", False),
        ("mkdir", ".local/state/nvim/swap/sub", True),
        ("symlink", ".local/state/nvim/swap/x.swp", False),
        ("link", ".local/state/nvim/swap/x.swp", False),
        ("unlink", ".local/state/nvim/swap/x.swp", True),
    ],
)
def test_name_changes(pol, op, name, allow):
    decision = policy.decide_name_change(pol, op, f"{HOME}/{name}")
    assert decision is not None and decision.allow == allow, decision


def test_other_names_are_not_state_names():
    for path in (f"{HOME}/proj/x", f"{HOME}/.bash_history-x/1.tmp", f"{HOME}/sub/.bash_history", f"{HOME}/.lesshst.bak"):
        assert policy.decide_name_change(POL, "symlink", path) is None, path


@pytest.mark.parametrize("pol", [POL, WIDE])
@pytest.mark.parametrize(
    "old, new, exchange, allow",
    [
        (".bash_history-9.tmp", ".bash_history", False, True),
        (".lesshsQ", ".lesshst", False, True),
        (".lesshsQ", ".lesshst", True, False),
        (".bash_history", "proj/moved", False, False),  # renamed away
        ("proj/f", ".bash_history", False, False),  # replaced from outside
        (".lesshsQ", ".bash_history", False, False),  # another tool's temporary name
        (".bash_history-9.tmp", ".bash_history-8.tmp", False, False),
        (".zsh_history.LOCK", ".zsh_history", False, False),
        (".local/state/nvim/swap/a", ".local/state/nvim/swap/b", False, True),
        (".local/state/nvim/swap/a", "proj/a", False, True),
        ("proj/evil", ".local/state/nvim/swap/a", False, False),
        (".local/state/nvim/swap", "proj/swap", False, False),
    ],
)
def test_renames(pol, old, new, exchange, allow):
    decision = policy.decide_rename(pol, f"{HOME}/{old}", f"{HOME}/{new}", exchange)
    assert decision is not None and decision.allow == allow, decision


def test_contents_are_writable_and_protections_still_win():
    assert policy.decide_write(POL, f"{HOME}/.bash_history").allow
    assert policy.decide_write(POL, f"{HOME}/.bash_history-77.tmp").allow
    assert not policy.decide_write(POL, f"{HOME}/.bash_historyX").allow
    held = policy.Policy(writable=POL.writable, protected=(f"{HOME}/.bash_history",), state=STATE)
    assert not policy.decide_write(held, f"{HOME}/.bash_history").allow
    assert not policy.landlock_expressible(POL)


@pytest.mark.skipif(fastpath._fastpath is None, reason="the compiled hot path is not built here")
@pytest.mark.parametrize("pol", [POL, WIDE])
def test_compiled_path_hands_every_state_name_to_python(pol):
    engine = fastpath._fastpath.Engine(**fastpath.spec(pol))
    for name in (".bash_history", ".bash_history-1.tmp", ".lesshsQ", ".zsh_history.LOCK", ".local/state/nvim/swap/x"):
        assert not engine.allowed(f"{HOME}/{name}".encode()), name
    assert engine.allowed(f"{HOME}/proj/a.c".encode())
    if pol is WIDE:
        assert engine.allowed(f"{HOME}/notes.txt".encode())
