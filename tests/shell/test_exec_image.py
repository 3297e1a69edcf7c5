"""`exec PROGRAM` in a confined shell must not lift confinement for PROGRAM.

Found by review: in p1 (whose .envrc does `PATH_add bin`), `exec bash`
runs p1's bin/bash as the session's shell process (same pid, same start
time). It cds to ~ and opens the prompt ping path: the supervisor took that
for the shell at its prompt and lifted confinement. Now a ping lifts only
while the pid runs the program image the supervisor accepted, unless the
shell stayed unconfined since (exec_guard.py).

Controls: the same program run as a plain command in p1 is confined (its
ping is no ping: another pid); `exec` of it typed outside any project is the
user's choice: it writes ~/out (the route is real) and the session keeps
confining and lifting.
"""

from __future__ import annotations

import json
import os

import pytest

from .conftest import furnish, SHELLS, Term, supervised

FAKE_BASH = """#!/usr/bin/python3
import os, sys
home = os.environ["HOME"]
os.chdir(home)
try:
    open("/dev/null/.peninsula-prompt", "w")
except OSError:
    pass
try:
    open(os.path.join(home, "out", "pwned-%d" % os.getpid()), "w").write("p1 ran unconfined\\n")
    print("WROTE")
except OSError as e:
    print("REFUSED", e)
if len(sys.argv) > 1 and sys.argv[1] == "-exec":
    os.execv("/bin/bash", ["bash", "-i"])
"""
REFUSAL = "peninsula: the shell exec'd a program while confined"
# Started in p1 (confined): keeps the shell's memory alive across its exec by
# reading it without pause (its open is read-only: the kernel lets the
# user's process read its shell's memory), and says whether the old memory
# still reads once the shell's pid runs another program.
PINNER = """import os, sys, threading, time
pid = int(sys.argv[1])
spans = [[int(x, 16) for x in line.split()[0].split("-")] for line in open(f"/proc/{pid}/maps")]
lo, hi = max(spans, key=lambda span: span[1] - span[0])
fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
first = os.pread(fd, 8, lo)
done = []
def reader():
    buf = bytearray(hi - lo)  # no allocation between reads: they overlap without a gap
    while True:
        try:
            os.preadv(fd, [buf], lo)
        except OSError:
            pass
        done.append(1)
for _ in range(4):
    threading.Thread(target=reader, daemon=True).start()
while len(done) < 8:  # every reader under way
    time.sleep(0.01)
print("PINNING", len(first), flush=True)
exe = os.readlink(f"/proc/{pid}/exe")
while os.readlink(f"/proc/{pid}/exe") == exe:
    time.sleep(0.01)
time.sleep(0.3)
print("OLD MM", "ALIVE" if os.pread(fd, 8, lo) == first else "GONE", flush=True)
"""


@pytest.fixture
def layout(user):
    home = user.mkdir(user.base / "home")
    p1, out = (user.mkdir(home / name) for name in ("p1", "out"))
    user.write(p1 / ".envrc", "PATH_add bin\n")
    user.mkdir(p1 / "bin")
    os.chmod(user.write(p1 / "bin" / "bash", FAKE_BASH), 0o755)
    user.write(p1 / "pinner.py", PINNER)
    return furnish(user, home, [p1])


def _out(home):
    return sorted(p.name for p in (home / "out").iterdir())


def _type(term, line):
    """A line the shell will not come back from (exec): no done-marker."""
    term.tmux("send-keys", "-l", line)
    term.tmux("send-keys", "Enter")


def _lift_refusals(home):
    entries = [json.loads(line) for log in home.rglob("denials.jsonl") for line in log.read_text().splitlines()]
    return [e for e in entries if e.get("op") == "lift"]


def test_control_as_a_command(user, layout):
    home = layout
    term = Term(user, home, "bash").start()
    try:
        supervised(term)
        term.run("cd ~/p1")
        term.prompt()
        text = term.run("bash")  # p1's bin/bash, as a command: its ping is another pid's open
        assert "REFUSED" in text, text
        assert _out(home) == [], text
    finally:
        term.close()


@pytest.mark.parametrize("shell", SHELLS)
def test_exec_of_p1s_bash_never_lifts(user, layout, shell):
    home = layout
    term = Term(user, home, shell).start()
    try:
        supervised(term)
        term.run("cd ~/p1")
        term.prompt()
        _type(term, "exec bash -exec")
        text = term.wait_for(r"^(WROTE|REFUSED)")
        assert "REFUSED" in text and REFUSAL in text, text
        assert _out(home) == [], text
        # The real bash it exec'd pings at each prompt: still no lift, even at ~.
        term.wait_for(r"~\$ $")
        term.run("cd ~")
        term.prompt()
        text = term.run(": > ~/out/later")
        assert "peninsula: denied" in text, text
        assert _out(home) == [], text
        assert [e["pid"] for e in _lift_refusals(home)], "the refused lift is logged"
    finally:
        term.close()


def test_exec_while_a_confined_process_pins_the_old_memory(user, layout):
    """Reading through a held /proc/PID/mem alone would be fooled here."""
    home = layout
    term = Term(user, home, "bash").start()
    try:
        supervised(term)
        term.run("cd ~/p1")
        term.run("printf -v big '%*s' 16000000 ''")  # a heap worth reading for a while
        term.run("python3 pinner.py $$ &")
        term.wait_for(r"PINNING 8$")
        _type(term, "exec bash -exec")
        text = term.wait_for(r"OLD MM (ALIVE|GONE)", timeout=40)
        assert "OLD MM ALIVE" in text, text  # control: the replaced memory still reads
        text = term.wait_for(r"^(WROTE|REFUSED)")
        assert "REFUSED" in text and REFUSAL in text, text
        assert _out(home) == [], text
    finally:
        term.close()


def test_exec_of_the_same_shell_in_a_project_never_lifts(user, layout):
    """We cannot tell `exec /bin/bash` from one a project preloaded."""
    home = layout
    term = Term(user, home, "bash").start()
    try:
        supervised(term)
        term.run("cd ~/p1")
        term.prompt()
        _type(term, "exec /bin/bash")
        text = term.wait_for(REFUSAL)
        term.run("cd ~")
        term.prompt()
        text = term.run(": > ~/out/later")
        assert "peninsula: denied" in text, text
        assert _out(home) == [], text
    finally:
        term.close()


def test_exec_outside_projects_is_the_users_choice(user, layout):
    home = layout
    term = Term(user, home, "bash").start()
    try:
        supervised(term)
        _type(term, "exec ~/p1/bin/bash -exec")
        text = term.wait_for(r"^(WROTE|REFUSED)")
        assert "WROTE" in text and REFUSAL not in text, text  # unconfined: the route is real
        assert len(_out(home)) == 1, text
        term.wait_for(r"~\$ $")
        term.run("cd ~/p1")
        term.prompt()
        text = term.run(": > ~/out/inside")
        assert "peninsula: denied" in text, text  # entering a project still confines
        term.run("cd ~")
        term.prompt()
        text = term.run(": > ~/out/outside")
        assert REFUSAL not in text, text
        assert "outside" in _out(home) and "inside" not in _out(home), text  # ...and leaving lifts
    finally:
        term.close()
