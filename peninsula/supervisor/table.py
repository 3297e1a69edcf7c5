"""Syscall number -> handler, for the syscalls this kernel knows."""

from __future__ import annotations

from peninsula.kernel.seccomp import syscall_number
from peninsula.supervisor.handlers import bind, metadata, names, opens, process, sockets, xattr
from peninsula.supervisor.handlers.request import acting


def handlers() -> dict[int, object]:
    table = {}
    for module in (opens, names, metadata, xattr, process):
        for name, func in vars(module).items():
            if name.startswith("h_"):
                number = syscall_number(name[2:])
                if number is not None:
                    table[number] = acting(func)
    table[syscall_number("connect")] = acting(sockets.h_connect)
    table[syscall_number("sendto")] = acting(sockets.h_sendto)
    table[syscall_number("bind")] = acting(bind.h_bind)
    return table
