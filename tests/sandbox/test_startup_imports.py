"""What a `peninsula run` start imports (issue 15: <= 50 ms): not landlockpy
(its package import always loads its testing module, ~10 ms), not hashlib
(OpenSSL), not the socket handlers (ipaddress) until a connect is trapped.
The control: a command that connects makes the supervisor import them."""

from __future__ import annotations

from conftest import SYSTEM_PYTHON

# (handlers.connect itself is imported by importlib.import_module, which
# -X importtime does not report: its imports stand for it.)
NOT_AT_START = ("landlockpy", "hashlib", "_hashlib", "ipaddress", "peninsula.supervisor.handlers.sockets",
                "peninsula.supervisor.handlers.loopback")


def _imported(who, *command) -> set[str]:
    done = who.run([SYSTEM_PYTHON, "-X", "importtime", "-m", "peninsula", "run", "--", *command])
    assert b"Traceback" not in done.stderr, done.stderr
    return {line.rsplit(b"|", 1)[1].strip().decode() for line in done.stderr.splitlines()
            if line.startswith(b"import time:") and b"|" in line}


def test_start_imports_nothing_heavy(who):
    imported = _imported(who, "true")
    assert "peninsula.sandbox.launch" in imported  # the list is the run's
    assert not imported & set(NOT_AT_START)
    connecting = _imported(who, "bash", "-c", ": < /dev/tcp/127.0.0.1/1 || true")
    assert {"peninsula.supervisor.handlers.sockets", "peninsula.supervisor.handlers.loopback"} <= connecting
