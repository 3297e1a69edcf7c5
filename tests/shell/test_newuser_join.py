"""Issue 18 item 8: `peninsula exec --session` typed in another hooked
terminal. The caller is judged by its own session (it is not confined when
its shell is outside projects), and the joined command's denial notices
appear on the caller's terminal."""

import re

from .conftest import supervised


def _session_id(term) -> str:
    text = term.run('echo "id=$PENINSULA_SESSION"')
    return re.findall(r"^id=(\S+)", text, re.M)[-1]


def test_exec_from_another_hooked_terminal(term_factory, home, user):
    first = term_factory("bash")
    supervised(first)
    first.run("cd proj")
    first.prompt()
    session = _session_id(first)
    second = term_factory("bash")
    supervised(second)
    assert _session_id(second) != session
    second.run("cd proj && cd ..")  # through the project and out again
    second.prompt()
    second.run("cd proj")  # the terminal is now in the project: confined
    second.prompt()
    refused = second.run(f"python3 -m peninsula exec --session {session} -- sh -c 'echo x > ../out/refused'; echo rc=$?")
    # The caller's own supervisor refuses the connect to another session's
    # control socket (sockets.py); were it let through, session A would
    # refuse with session B's words.
    assert (("peninsula: denied connect of " in refused and "control.sock" in refused)
            or ("refused: the caller runs confined (confined to " in refused and ", in session " in refused)), refused
    assert "rc=125" in refused and not (home / "out" / "refused").exists()
    second.run("cd ~")
    second.prompt()
    # From the home directory (walking into the project would confine the caller).
    text = second.run(f"python3 -m peninsula exec --session {session} -- sh -c "
                      "'cd proj && echo joined > joined; echo x > ../out/joined-escape; echo rc=$?'")
    assert "rc=2" in text, text  # ran, confined by the first session's state
    assert (home / "proj" / "joined").read_text() == "joined\n"
    assert not (home / "out" / "joined-escape").exists()
    notice = f"peninsula: denied open of {home / 'out' / 'joined-escape'}"
    assert notice in text, text  # on the caller's terminal
    assert notice not in first.screen()


def test_forged_session_socket_is_not_believed(term_factory, home, user):
    # A confined process plants a "session" whose socket says everyone is
    # unconfined: the socket is not served by the caller's supervisor.
    first = term_factory("bash")
    supervised(first)
    first.run("cd proj")
    first.prompt()
    session = _session_id(first)
    second = term_factory("bash")
    supervised(second)
    second.run("cd proj")
    second.prompt()
    fake = ("import json,os,socket; d='/tmp/peninsula-%d/fake-1' % os.getuid(); os.makedirs(d, exist_ok=True); "
            "s=socket.socket(socket.AF_UNIX); s.bind(d+'/control.sock'); s.listen(8)\n"
            "while True:\n c,_=s.accept(); c.recv(9999); c.sendall(b'{\"confined\": false, \"state\": \"x\"}\\n'); c.close()")
    user.write(home / "proj" / "fake.py", fake)
    second.run("python3 fake.py & sleep 1")
    text = second.run(f"python3 -m peninsula exec --session {session} -- sh -c 'echo x > ../out/forged'; echo rc=$?")
    second.run("kill %1")
    # Refused by the caller's own supervisor at connect, or by session A.
    assert ("refused: the caller runs confined" in text or "peninsula: denied connect of " in text), text
    assert "rc=125" in text, text
    assert not (home / "out" / "forged").exists()
