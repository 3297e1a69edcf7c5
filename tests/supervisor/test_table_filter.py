"""The BPF program carries exactly the syscall table's rules.

The exported program is run here by a small classic-BPF interpreter on
seccomp_data made up for each rule: a witness that satisfies the rule's
tests must get the row's action, and all-zero arguments must get the
action of the unconditional rules only (ALLOW when a syscall is trapped on
conditions alone, and for every syscall no row names). Checked for all
four filters (run / shell session, with and without --fast).
"""

from __future__ import annotations

import errno
import struct

import pytest

from peninsula.kernel import seccomp
from peninsula.kernel.seccomp import build_filter_bpf, syscall_number
from peninsula.supervisor import table

AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW = 0x7FFF0000
RET_NOTIFY = 0x7FC00000
RET_ERRNO = 0x00050000
RET_KILL_PROCESS = 0x80000000
FORMS = [(chdir, fast) for chdir in (False, True) for fast in (False, True)]


def run_bpf(program: bytes, nr: int, args=(0,) * 6, arch: int = AUDIT_ARCH_X86_64) -> int:
    """The return value of a classic BPF program on one seccomp_data."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    insns = [struct.unpack_from("<HBBI", program, off) for off in range(0, len(program), 8)]
    acc = idx = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x00:  # ld #k
            acc = k
        elif code == 0x60:  # ld M[k]
            acc = mem[k]
        elif code == 0x61:  # ldx M[k]
            idx = mem[k]
        elif code == 0x02:  # st M[k]
            mem[k] = acc
        elif code == 0x03:  # stx M[k]
            mem[k] = idx
        elif code == 0x54:  # and #k
            acc &= k
        elif code == 0x07:  # tax
            idx = acc
        elif code == 0x87:  # txa
            acc = idx
        elif code == 0x05:  # ja
            pc += k
        elif cls == 0x05:  # conditional jumps against k
            op = code & 0xF0
            if code & 0x08:
                raise AssertionError(f"unexpected jump on X: {code:#x}")
            taken = {0x10: acc == k, 0x20: acc > k, 0x30: acc >= k, 0x40: bool(acc & k)}[op]
            pc += jt if taken else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected BPF instruction {code:#x}")


def expected(action) -> int:
    return RET_NOTIFY if action is None else RET_ERRNO | action


def witness(tests) -> tuple[int, ...]:
    """Arguments that satisfy every test of one rule (all others zero)."""
    args = [0] * 6
    for index, op, value, mask in tests:
        args[index] = {"eq": value, "ne": 1, "masked_eq": value}[op]
    for index, op, value, mask in tests:
        assert {"eq": args[index] == value, "ne": args[index] != value,
                "masked_eq": args[index] & mask == value}[op], (tests, args)
    return tuple(args)


@pytest.mark.parametrize("chdir,fast", FORMS)
def test_every_rule_has_its_action(chdir, fast):
    program = build_filter_bpf(table.rules(chdir, fast))
    for name, action, tests in table.rules(chdir, fast):
        got = run_bpf(program, syscall_number(name), witness(tests))
        assert got == expected(action), (name, tests, hex(got))


@pytest.mark.parametrize("chdir,fast", FORMS)
def test_nothing_else_is_trapped(chdir, fast):
    """With all-zero arguments only unconditional rules act: every
    conditional one needs a non-zero argument (a flag, a request, a
    signal), so this also shows the conditions are there at all."""
    rules = table.rules(chdir, fast)
    assert all(any((value != 0) == (op != "ne") for _, op, value, _ in tests) for _, _, tests in rules if tests)
    unconditional = {syscall_number(name): expected(action) for name, action, tests in rules if not tests}
    program = build_filter_bpf(rules)
    for nr in range(512):
        assert run_bpf(program, nr) == unconditional.get(nr, RET_ALLOW), nr


@pytest.mark.parametrize("chdir,fast", FORMS)
def test_pairs_carried_equal_the_table(chdir, fast):
    """The (syscall, action) pairs the program yields on every witness and
    on zero arguments are the table's rows carried by this filter."""
    which = table.SESSION if chdir else table.RUN
    want = set()
    for row in table.ROWS:
        for cond in row.conditions:
            if which in cond.filters and cond.fast in (None, fast):
                want.add((row.name, expected(None if cond.action == table.NOTIFY else cond.action)))
    program = build_filter_bpf(table.rules(chdir, fast))
    seen = set()
    for name in {row.name for row in table.ROWS}:
        inputs = [(0,) * 6] + [witness(tests) for n, _, tests in table.rules(chdir, fast) if n == name]
        for args in inputs:
            got = run_bpf(program, syscall_number(name), args)
            if got != RET_ALLOW:
                seen.add((name, got))
    assert seen == want


def test_forms_differ_as_the_table_says():
    run = dict.fromkeys(table.trapped(False, False))
    session = dict.fromkeys(table.trapped(True, False))
    assert {"chdir", "fchdir", "kill", "clone", "fcntl", "mount", "open_tree"} <= session.keys() - run.keys()
    assert {"mkdir", "unlink", "rename", "link", "symlink"} <= run.keys() - dict.fromkeys(table.trapped(False, True)).keys()
    program = build_filter_bpf(table.rules(False, False))
    assert run_bpf(program, syscall_number("mount")) == RET_ERRNO | errno.EPERM  # refused in BPF for run
    assert run_bpf(program, syscall_number("kill"), (1, 9, 0, 0, 0, 0)) == RET_ALLOW  # session only
    # open_by_handle_at keeps every write-intent flag trapped under --fast
    fast = build_filter_bpf(table.rules(False, True))
    creat_excl = 0o100 | 0o200
    assert run_bpf(fast, syscall_number("openat"), (0, 0, creat_excl, 0, 0, 0)) == RET_ALLOW
    assert run_bpf(fast, syscall_number("open_by_handle_at"), (0, 0, creat_excl, 0, 0, 0)) == RET_NOTIFY


def test_high_bits_of_a_signal_are_trapped():
    program = build_filter_bpf(table.rules(True, False))
    assert run_bpf(program, syscall_number("kill"), (1, 1 << 32, 0, 0, 0, 0)) == RET_NOTIFY
    assert run_bpf(program, syscall_number("kill"), (1, 0, 0, 0, 0, 0)) == RET_ALLOW


def test_foreign_architecture_is_killed():
    program = build_filter_bpf(table.rules())
    assert run_bpf(program, 2, arch=0x40000003) == RET_KILL_PROCESS  # AUDIT_ARCH_I386


def test_ioctl_requests_compare_low_32_bits():
    program = build_filter_bpf(table.rules())
    assert run_bpf(program, syscall_number("ioctl"), (0, (1 << 32) | seccomp.TIOCSTI, 0, 0, 0, 0)) == RET_ERRNO | errno.EPERM
