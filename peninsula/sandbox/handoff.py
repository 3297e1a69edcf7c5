"""The last step before exec in every confined process: install the
seccomp filter and hand its listener to the supervisor."""

from __future__ import annotations

import errno
import os
import socket


def load_and_hand_over(program, sock: socket.socket) -> None:
    """Load program on this thread and send the listener fd over sock.

    From here until exec, no trapped syscall may be made: the supervisor
    cannot answer before it holds the listener (sendmsg and execve are
    not trapped)."""
    try:
        listener = program.load(killable=True)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
        listener = program.load(killable=False)  # kernels before 5.19
    socket.send_fds(sock, [b"ok"], [listener])
    os.close(listener)
