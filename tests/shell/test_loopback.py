"""Invariant 8 in a real shell session, for this host's TCP ports: a
confined process cannot make a listener outside on 127.0.0.1 (socat
running a shell for whoever connects) act for it; an unconfined one still
can, and a dev server and its client inside one project reach each other."""

from __future__ import annotations

import time

from loopback_services import CLIENT, start_socat, stop, wait_for

from .conftest import supervised

# A dev server and a client in one command of the project.
DEV = """
import socket, threading
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
def serve():
    c, _ = srv.accept()
    c.sendall(b"dev-server-ok")
    c.close()
threading.Thread(target=serve, daemon=True).start()
print(socket.create_connection(srv.getsockname()).recv(32).decode())
"""


def test_outside_listener_refused_in_a_project(term_factory, home, user):
    client = user.write(home / "client.py", CLIENT)
    dev = user.write(home / "dev.py", DEV)
    out = home / "out"
    socat, port = start_socat(user.prefix(), user.env({"HOME": str(home)}), str(home))
    try:
        term = term_factory("bash")
        supervised(term)
        ask = f"python3 {client} 127.0.0.1 {port} tcp"
        assert "sent" in term.run(f"{ask} 'touch {out}/control'")  # the unconfined shell reaches it
        assert wait_for(out / "control")
        term.run("cd proj")
        text = term.run(f"{ask} 'touch {out}/escaped'")
        assert "errno EACCES" in text, text
        flat = text.replace("\n", "")
        assert f"denied connect of 127.0.0.1:{port} (tcp)" in flat, text
        assert f"allow with allow_loopback = [{port}] in" in flat, text
        assert "dev-server-ok" in term.run(f"python3 {dev}")
        term.run("cd ..")
        assert "sent" in term.run(f"{ask} 'touch {out}/after'")
        assert wait_for(out / "after")
        time.sleep(0.3)
        assert not (out / "escaped").exists()
    finally:
        stop(socat)


def test_allow_loopback_in_the_user_config(term_factory, home, user):
    client = user.write(home / "client.py", CLIENT)
    out = home / "out"
    socat, port = start_socat(user.prefix(), user.env({"HOME": str(home)}), str(home))
    try:
        config = home / ".config" / "peninsula" / "config.toml"
        user.write(config, config.read_text() + f"allow_loopback = [{port}]\n")
        term = term_factory("bash")
        supervised(term)
        term.run("cd proj")
        assert "sent" in term.run(f"python3 {client} 127.0.0.1 {port} tcp 'touch {out}/allowed'")
        assert wait_for(out / "allowed")
        text = term.run("python3 -m peninsula status").replace("\n", "")
        assert "TCP/UDP ports a confined command may reach" in text and f"{port}: allowed by allow_loopback in" in text, text
        assert "53: DNS" in text, text
    finally:
        stop(socat)
