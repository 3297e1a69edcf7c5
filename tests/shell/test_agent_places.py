"""An ssh-agent started at a prompt outside projects (`eval "$(ssh-agent
-s)"`, after the session started) serves the projects too: a socket in
ssh-agent's own place (/tmp/ssh-*/agent.N, in a private directory of the
user's) is on the allow-list by place, since only the user's unconfined
processes can put one there. The controls: the same socket in a directory
others may enter is refused, and a confined process cannot make the place.
"""

from __future__ import annotations

import os
import uuid

from .conftest import PENINSULA, supervised


def test_an_agent_started_outside_projects_serves_a_project(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    term.run('eval "$(ssh-agent -s)"; ssh-keygen -q -t ed25519 -N "" -C pt-place -f ~/k && ssh-add -q ~/k', timeout=40)
    term.run("cd proj")
    text = term.run("ssh-add -l; echo rc=$?", timeout=30)
    assert "pt-place" in text and "rc=0" in text
    assert "denied" not in text
    text = term.run(f'{PENINSULA} check --connect "$SSH_AUTH_SOCK"')
    assert "ssh-agent" in text
    term.run("cd; kill $SSH_AGENT_PID")


def test_a_socket_there_in_a_directory_others_may_enter_is_refused(term_factory, home, user):
    """An unconfined listener that runs what it is sent, at /tmp/ssh-X/agent.1:
    in a private directory it is the user's own choice (allowed); in one
    anyone may enter, it is any listener (refused)."""
    tag = uuid.uuid4().hex[:8]
    term = term_factory("bash")
    supervised(term)
    open_dir, private = f"/tmp/ssh-pt{tag}o", f"/tmp/ssh-pt{tag}p"
    serve = ("python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); "
             "c, _ = s.accept(); c.sendall(b\"served\\n\")' ")
    try:
        term.run(f"mkdir -m 755 {open_dir} && mkdir -m 700 {private}")
        term.run(f"{serve}{open_dir}/agent.1 & {serve}{private}/agent.1 & sleep 1")
        term.run("cd proj")
        client = "python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print(s.recv(64).decode())' "
        text = term.run(f"{client}{open_dir}/agent.1; echo rc=$?")
        assert f"denied connect of {open_dir}/agent.1" in text and "rc=1" in text
        text = term.run(f"{client}{private}/agent.1; echo rc=$?")
        assert "served" in text and "rc=0" in text
        # A confined process cannot make such a place of its own.
        text = term.run(f"mkdir -m 700 /tmp/ssh-pt{tag}c; echo rc=$?")
        assert "rc=1" in text and not os.path.exists(f"/tmp/ssh-pt{tag}c")
        term.run("cd ~")
        term.prompt()
        term.run(f"{client}{open_dir}/agent.1")  # the control: unconfined, the open one serves too
        assert "served" in term.screen()
    finally:
        term.run(f"rm -rf {open_dir} {private} /tmp/ssh-pt{tag}c")
