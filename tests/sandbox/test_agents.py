"""ssh-agent inside and outside a project (issue 13, item 5).

An agent makes itself non-dumpable (prctl PR_SET_DUMPABLE 0), so a
supervisor that is not root cannot read its requests (process_vm_readv
needs ptrace access): no sound way was found to serve them (see README).
Started inside a project it fails with one line that names the way out;
started outside, it serves ssh-add run inside the project.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest



@pytest.fixture
def project(user):
    return user.mkdir(user.base / "proj")


def test_agent_started_inside_says_how_to_get_out(user, project):
    proc = user.peninsula("run", "--project", project, "--", "sh", "-c", "ssh-agent -s; echo agent=$?", cwd=project)
    notices = [line for line in proc.stderr.decode().splitlines() if line.startswith("peninsula:")]
    assert len(notices) == 1, proc.stderr.decode()
    assert "not dumpable" in notices[0] and "start it outside the project" in notices[0], notices


def test_agent_started_outside_serves_the_project(user, project):
    sock = user.base / "agent.sock"
    agent = subprocess.run(user.prefix() + ["ssh-agent", "-a", str(sock), "-s"], capture_output=True,
                           env=user.env(), cwd=user.base, text=True, timeout=30)
    assert agent.returncode == 0, agent.stderr
    pid = int(agent.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    try:
        key = project / "key"
        made = user.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], cwd=project)
        assert made.returncode == 0, made.stderr
        inside = user.peninsula("run", "--project", project, "--", "sh", "-c", f"ssh-add {key} && ssh-add -l",
                                cwd=project, env={"SSH_AUTH_SOCK": str(sock)})
        out = inside.stdout.decode() + inside.stderr.decode()
        assert inside.returncode == 0 and "ED25519" in out, out
        assert "peninsula: denied" not in out, out
    finally:
        os.kill(pid, signal.SIGTERM)
