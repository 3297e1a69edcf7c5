"""seccomp.X86_64_SYSCALLS spares the supervisor libseccomp at start; it
must say what libseccomp says for every name both know."""

import pyseccomp as sc

from peninsula.kernel import seccomp
from peninsula.supervisor import table


def test_syscall_table_agrees_with_libseccomp():
    arch = sc.system_arch()
    unknown = []
    for name, number in seccomp.X86_64_SYSCALLS.items():
        known = sc.resolve_syscall(arch, name)
        if known < 0:
            unknown.append(name)
        else:
            assert known == number, (name, number, known)
    assert set(unknown) <= {"fchmodat2", "setxattrat", "removexattrat", "file_setattr", "open_tree_attr"}, unknown


def test_every_trapped_name_is_in_the_table():
    names = [row.name for row in table.ROWS]
    assert [n for n in names if n not in seccomp.X86_64_SYSCALLS] == []
