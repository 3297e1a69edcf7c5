"""Invariant 8 in a real shell session: a confined process cannot make the
user's services outside act for it (the terminal's own tmux server, a unix
service that runs what it receives); an unconfined one still can."""

from __future__ import annotations

import subprocess
import time

from services import CLIENT, SERVICE

from .conftest import SYSTEM_PYTHON, supervised


def test_services_outside_refused_in_a_project(term_factory, home, user):
    client = user.write(home / "client.py", CLIENT)
    sock, out = home / "svc.sock", home / "out"
    service = subprocess.Popen(user.prefix() + [SYSTEM_PYTHON, "-c", SERVICE, str(sock)], env=user.env({"HOME": str(home)}),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert service.stdout.readline().strip() == b"ready"
        term = term_factory("bash")
        supervised(term)
        ask = f"python3 {client} {sock}"
        # Controls: both routes work from the unconfined shell.
        assert "reply ran" in term.run(f"{ask} 'touch {out}/control'")
        term.run(f"tmux new-window -d 'touch {out}/tmux-control'")
        term.run("cd proj")
        text = term.run(f"{ask} 'touch {out}/escaped'")
        assert "errno EACCES" in text
        assert f"denied connect of {sock}" in text
        assert f'allow with allow_socket = ["{sock}"] in' in text.replace("\n", ""), text
        # The terminal this shell runs in is a tmux server outside the session.
        text = term.run(f"tmux new-window -d 'touch {out}/tmux-escaped'; echo tmux=$?")
        assert "tmux=1" in text and "denied connect of /tmp/tmux-" in text, text
        text = term.run(f"python3 -m peninsula check --connect {sock}; python3 -m peninsula status")
        assert f"connect {sock}: DENIED: the listener python3" in text, text
        assert "unix sockets a confined command may reach" in text and "control.sock: peninsula" in text, text
        term.run("cd ..")
        assert "reply ran" in term.run(f"{ask} 'touch {out}/after'")
        time.sleep(0.5)
        assert sorted(p.name for p in out.iterdir()) == ["after", "control", "tmux-control"]
    finally:
        service.kill()
        service.wait()


def test_allow_socket_in_the_user_config(term_factory, home, user):
    client = user.write(home / "client.py", CLIENT)
    sock, out = home / "svc.sock", home / "out"
    service = subprocess.Popen(user.prefix() + [SYSTEM_PYTHON, "-c", SERVICE, str(sock)], env=user.env({"HOME": str(home)}),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert service.stdout.readline().strip() == b"ready"
        config = home / ".config" / "peninsula" / "config.toml"
        user.write(config, config.read_text() + f'allow_socket = ["{home}/svc.*"]\n')
        term = term_factory("bash")
        supervised(term)
        term.run("cd proj")
        assert "reply ran" in term.run(f"python3 {client} {sock} 'touch {out}/allowed'")
        time.sleep(0.3)
        assert (out / "allowed").exists()
    finally:
        service.kill()
        service.wait()
