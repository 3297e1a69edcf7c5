"""The shell's pid may come to run another program: `exec PROGRAM`.

A prompt ping (judge.PING_PATH) can lift confinement because only the
shell's own pid can make it. A program the shell exec'd keeps that pid (and
its start time): exec'd while the shell was confined (`exec bash` with a
project's bin/ first on PATH, or under a project's LD_PRELOAD), it is the
project's code, and its ping would lift confinement for it. So before a
ping may lift, the pid must still run the program image accepted at the
last ping that lifted (kernel/image.py tells). If it does not, and the shell
was confined at any time since that ping, the exec may have been the
project's choice and no ping lifts again in this session: the shell keeps
the strictest state it had (later moves only tighten). If it stayed
unconfined throughout, the user chose the new program: it is accepted.
"""

from __future__ import annotations

import contextlib
import os
import time

from peninsula.kernel import target
from peninsula.kernel.image import Image
from peninsula.policy.timeline import Timeline

REFUSAL = ("the shell exec'd a program while confined (its pid may now run a project's program): "
           "confinement is not lifted again in this terminal; start a new terminal")


class ExecGuard:
    def __init__(self, shell_pid: int, timeline: Timeline, tell, notices):
        self.shell_pid = shell_pid
        self.timeline = timeline
        self.tell = tell
        self.notices = notices
        self.image = _hold(shell_pid)
        self.mark = len(timeline) - 1  # the timeline's state in force at the last ping that lifted
        self.refused = False

    def ping_may_lift(self, tid: int) -> bool:
        """Called at the shell's ping, the pinging thread stopped in it."""
        if self.refused:
            return False
        if self.image is not None and self.image.unchanged():
            return True
        if self.timeline.confined_since(self.mark):
            self.refused = True
            self.tell(REFUSAL)
            self._log(tid)
            return False
        if self.image is not None:
            self.image.close()
        self.image = _hold(self.shell_pid)  # exec'd while unconfined: the user's own choice
        return True

    def lifted(self) -> None:
        """The ping was let through: the state it set is the new mark."""
        self.mark = len(self.timeline) - 1

    def _log(self, tid: int) -> None:
        if self.notices.log is None:
            return
        where = "?"
        with contextlib.suppress(OSError):
            where = os.readlink(f"/proc/{self.shell_pid}/cwd")
        self.notices.log.add({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "pid": self.shell_pid,
            "tid": tid,
            "comm": target.comm(self.shell_pid),
            "op": "lift",
            "path": where,
            "reason": REFUSAL,
            "errno": "EPERM",
        })


def _hold(pid: int) -> Image | None:
    """None when pid's memory cannot be held (it is gone, or not dumpable):
    then every later image counts as another one (fail closed)."""
    try:
        return Image(pid)
    except OSError:
        return None
