"""The threaded-writer race in a real shell session (F1/F2 of the review):
a confined process's second thread spins on write() while the first
connects. Refused listeners must get no byte: a service outside that runs
what it receives, and another session's control socket (whose exec would
run unconfined for a caller it judged by the connecting supervisor).
Positive controls: the same racers from the unconfined shell get through."""

from __future__ import annotations

import re
import subprocess
import time

from services import SERVICE

from .conftest import SYSTEM_PYTHON, supervised

# argv: socket path, a line to send (or "exec:CMD" for a control-socket
# exec request with stdio and cwd), rounds. Prints: written N errors E.
RACER = r'''
import errno, json, os, socket, sys, threading
path, what, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
if what.startswith("exec:"):
    req = json.dumps({"op": "exec", "argv": ["sh", "-c", what[5:]], "env": dict(os.environ)}).encode() + b"\n"
else:
    req = what.encode() + b"\n"
written, errs = 0, set()
for i in range(rounds):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    done, won = threading.Event(), []
    def spin():
        while not done.is_set():
            try:
                won.append(socket.send_fds(s, [req], [0, 1, 2, cwd]))
                return
            except OSError:
                pass
    t = threading.Thread(target=spin)
    t.start()
    try:
        s.connect(path)
    except OSError as err:
        errs.add(errno.errorcode[err.errno])
    done.set()
    t.join()
    if won:
        written += 1
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
        os.close(cwd)
        break
    s.close()
    os.close(cwd)
print("written", written, "errors", ",".join(sorted(errs)) or "-", flush=True)
'''

ROUNDS = 200


def _wait_for(path, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not path.exists():
        time.sleep(0.05)
    return path.exists()


def test_writer_race_to_an_outside_service(term_factory, home, user):
    racer = user.write(home / "racer.py", RACER)
    sock, out = home / "svc.sock", home / "out"
    service = subprocess.Popen(user.prefix() + [SYSTEM_PYTHON, "-c", SERVICE, str(sock)], env=user.env({"HOME": str(home)}),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert service.stdout.readline().strip() == b"ready"
        term = term_factory("bash")
        supervised(term)
        text = term.run(f"python3 {racer} {sock} 'touch {out}/control' 5")
        assert "written 1" in text, text
        assert _wait_for(out / "control")
        term.run("cd proj")
        text = term.run(f"python3 {racer} {sock} 'touch {out}/escaped' {ROUNDS} 2>/dev/null")
        assert "written 0 errors EACCES" in text, text
        time.sleep(0.5)
        assert sorted(p.name for p in out.iterdir()) == ["control"]
    finally:
        service.kill()
        service.wait()


def test_writer_race_to_another_sessions_control_socket(term_factory, home, user):
    racer = user.write(home / "racer.py", RACER)
    out = home / "out"
    first = term_factory("bash")
    supervised(first)
    text = first.run('echo "dir=$PENINSULA_SESSION_DIR"')
    control = re.findall(r"^dir=(\S+)$", text, re.M)[-1] + "/control.sock"
    second = term_factory("bash")
    supervised(second)
    # Control: the second session's unconfined shell asks the first
    # session to run a command, and it runs.
    text = second.run(f"python3 {racer} {control} 'exec:touch {out}/control' 5")
    assert "written 1" in text, text
    assert _wait_for(out / "control")
    second.run("cd proj")
    text = second.run(f"python3 {racer} {control} 'exec:touch {out}/escaped' {ROUNDS} 2>/dev/null")
    assert "written 0 errors EACCES" in text, text
    time.sleep(0.5)
    assert sorted(p.name for p in out.iterdir()) == ["control"]
