"""What a confined run ends with: its exit codes, its report (Result, see report.schema.json) and SandboxError.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field


# Exit codes for peninsula's own failures (the command's own status is
# passed through; 128+N when it was killed by signal N).
EXIT_SETUP = 125  # bad usage, bad config, or a sandbox that cannot be built


EXIT_NOEXEC = 126  # the command was found but could not be executed


EXIT_NOTFOUND = 127  # the command was not found


EXIT_SUPERVISOR_DIED = 123  # the supervisor died; the command was cut off


EXIT_TIMEOUT = 124  # the wall-time limit killed the command (as timeout(1))


STATUSES = ("ok", "exited nonzero", "signaled", "timed out", "setup failed", "supervisor died")


REPORT_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.schema.json")


class SandboxError(Exception):
    """Setting up the sandbox failed; the message is for the user."""


@dataclass
class Result:
    status: str  # one of STATUSES
    exit_code: int | None
    signal: int | None
    start_time: float
    real_time: float
    user_time: float
    system_time: float
    max_rss_kb: int
    denials: int
    first_denials: list = field(default_factory=list)
    message: str | None = None

    @property
    def returncode(self) -> int:
        """The exit status the CLI gives back for this result."""
        if self.status == "setup failed":
            return self.exit_code if self.exit_code is not None else EXIT_SETUP
        if self.status == "supervisor died":
            return EXIT_SUPERVISOR_DIED
        if self.status == "timed out":
            return EXIT_TIMEOUT
        if self.signal:
            return 128 + self.signal
        return self.exit_code or 0

    def to_dict(self) -> dict:
        """The report object (see report.schema.json)."""
        data = asdict(self)
        data["returncode"] = self.returncode
        data["start_time_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.start_time))
        return data

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=True, indent=indent)
