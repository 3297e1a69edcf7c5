"""The syscall table against the handlers that exist, in Python and in C.

problems() walks the table: a C handler with no Python twin, a trapped
(notify) syscall with no handler, a handler no row names, a row that says
compiled when C has no such handler. The real table must have none; each
kind is shown to be caught on a table altered to have it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from peninsula.kernel.seccomp import X86_64_SYSCALLS, syscall_number
from peninsula.supervisor import fastpath, table

JUDGE_SOURCE = Path(table.__file__).resolve().parent.parent / "shell" / "judge.py"


def judge_methods() -> set[str]:
    """The h_* methods of the shell session's supervisor class (it is made
    inside make_shell_supervisor, so read from its source)."""
    tree = ast.parse(JUDGE_SOURCE.read_text())
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == "_ShellSupervisor"]
    assert len(classes) == 1
    return {node.name for node in classes[0].body if isinstance(node, ast.FunctionDef) and node.name.startswith("h_")}


def module_handlers(family: str) -> set[str]:
    module = importlib.import_module(f"peninsula.supervisor.handlers.{family}")
    return {name for name, value in vars(module).items() if name.startswith("h_") and callable(value)}


def defined(family: str | None, name: str | None, methods: set[str]) -> bool:
    if family is None or name is None:
        return False
    return name in methods if family == table.JUDGE else name in module_handlers(family)


def problems(rows, c_handlers, methods) -> list[str]:
    found = []
    by_c = {row.compiled: row for row in rows if row.compiled}
    for name in c_handlers:
        row = by_c.get(name)
        if row is None:
            found.append(f"C handler {name}: no row names it")
        elif row.python_handler != f"h_{name}" or not defined(row.family, row.python_handler, methods):
            found.append(f"C handler {name}: no Python twin h_{name} in {row.family}")
    for row in rows:
        notify = any(cond.action == table.NOTIFY for cond in row.conditions)
        if notify and not defined(row.family, row.python_handler, methods):
            found.append(f"{row.name}: trapped, and no handler {row.family}.{row.python_handler}")
        if not notify and row.family is not None:
            found.append(f"{row.name}: never sent to the supervisor, yet has a handler family")
        if row.compiled and row.compiled not in c_handlers:
            found.append(f"{row.name}: says compiled ({row.compiled}), and C has no such handler")
        for routed in row.routed:
            family, _, name = routed.partition(".")
            if not defined(family, name, methods):
                found.append(f"{row.name}: routes to {routed}, which does not exist")
    named = {(row.family, row.python_handler) for row in rows}
    named |= {tuple(routed.partition(".")[::2]) for row in rows for routed in row.routed}
    for family in (*table.FAMILIES, table.LINEAGE):
        for name in module_handlers(family):
            if (family, name) not in named:
                found.append(f"{family}.{name}: a handler no row names")
    for name in methods:
        if (table.JUDGE, name) not in named:
            found.append(f"judge.{name}: a handler no row names")
    return found


@pytest.fixture(scope="module")
def c_handlers() -> tuple[str, ...]:
    assert fastpath._fastpath is not None, "the compiled hot path is not built (setup.sh)"
    return fastpath._fastpath.HANDLERS


def test_the_table_and_the_handlers_agree(c_handlers):
    assert problems(table.ROWS, c_handlers, judge_methods()) == []


def _altered(name: str, **changes):
    return tuple(row._replace(**changes) if row.name == name else row for row in table.ROWS)


@pytest.mark.parametrize("rows,c_extra,expected", [
    (_altered("creat", compiled=None), (), "C handler creat: no row names it"),
    (_altered("mkdir", family="xattr"), (), "C handler mkdir: no Python twin"),
    (_altered("symlink", family="opens"), (), "symlink: trapped, and no handler"),
    (_altered("chdir", handler="h_cd"), (), "chdir: trapped, and no handler"),
    (tuple(row for row in table.ROWS if row.name != "truncate"), (), "metadata.h_truncate: a handler no row names"),
    (tuple(row for row in table.ROWS if row.name != "fchdir"), (), "judge.h_fchdir: a handler no row names"),
    (_altered("ioctl", routed=()), (), "lineage.h_owner_ioctl: a handler no row names"),
    (_altered("symlink", compiled="symlink"), (), "symlink: says compiled (symlink), and C has no such handler"),
    (table.ROWS, ("fsync",), "C handler fsync: no row names it"),
    (_altered("bpf", family="process"), (), "bpf: never sent to the supervisor"),
])
def test_each_disagreement_is_caught(c_handlers, rows, c_extra, expected):
    found = problems(rows, (*c_handlers, *c_extra), judge_methods())
    assert any(line.startswith(expected) for line in found), found


def test_dispatch_covers_every_trapped_syscall():
    run = table.handlers()
    session = {**run, **table.lineage_handlers(object()), **table.judge_handlers(type("J", (), dict.fromkeys(judge_methods(), 0)))}
    for fast in (False, True):
        assert {syscall_number(name) for name in table.trapped(False, fast)} <= run.keys()
        assert {syscall_number(name) for name in table.trapped(True, fast)} <= session.keys()


def test_compiled_dispatch_is_what_the_table_says(c_handlers):
    for chdir in (False, True):
        pairs = table.compiled(chdir)
        assert all(name in c_handlers and X86_64_SYSCALLS[name] == nr for nr, name in pairs), pairs
        assert {name for _, name in pairs} <= set(table.trapped(chdir))
    assert {name for _, name in table.compiled(True)} == set(c_handlers)
    assert {name for _, name in table.compiled(False)} == set(c_handlers) - {"kill", "tgkill", "rt_tgsigqueueinfo", "exit_group"}


def test_engine_refuses_an_unknown_handler(c_handlers):
    with pytest.raises(ValueError):
        fastpath._fastpath.Engine(judge=lambda tid: (-2, 0), handlers=((2, "no_such_handler"),))
    with pytest.raises(ValueError):
        fastpath._fastpath.Engine(judge=lambda tid: (-2, 0), handlers=((512, "open"),))


def test_every_row_has_a_note_and_one_row_per_syscall():
    names = [row.name for row in table.ROWS]
    assert len(names) == len(set(names))
    assert all(row.note and "\n" not in row.note for row in table.ROWS)
