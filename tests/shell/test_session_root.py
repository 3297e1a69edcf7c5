"""The session root (/tmp/peninsula-UID without XDG_RUNTIME_DIR) and the
sessions in it cannot be replaced, renamed or faked by a confined process;
the supervisor's own writes go through the directory fd it opened, and a
socket planted at a session's name is not taken for a session."""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .conftest import SYSTEM_PYTHON, Term, supervised


def _session(term: Term) -> str:
    text = term.run('echo "sid=$PENINSULA_SESSION"')
    return re.findall(r"^sid=(\d+-\d+)\s*$", text, re.M)[-1]


def test_confined_process_cannot_replace_the_session_root(term_factory, home, user):
    root = Path(f"/tmp/peninsula-{user.uid}")
    moved = Path(f"{root}.moved")
    evil = Path(f"/tmp/pt-evil-{uuid.uuid4().hex[:8]}")
    term = term_factory("bash")
    supervised(term)
    sid = _session(term)
    rc = (home / ".bashrc").read_text()
    term.run("cd proj")
    # The review's repro, step by step, confined.
    term.run(f"mv {root} {moved}")
    assert root.is_dir() and not root.is_symlink() and not moved.exists()
    term.run(f"mkdir -p {evil}/{sid} && ln -s ~/.bashrc {evil}/{sid}/state.new && ln -s ~/.bashrc {evil}/{sid}/caches.new")
    term.run(f"ln -s {evil} {root}")
    assert not os.path.lexists(root / evil.name)
    # Another session's directory, and a planted session.
    fake = f"fake-{uuid.uuid4().hex[:8]}"  # unique: the root outlives test runs
    term.run(f"mv {root}/{sid} {root}/{fake}-gone; mkdir {root}/{fake}-1; ln -s {evil} {root}/{fake}-2")
    assert (root / sid).is_dir() and not os.path.lexists(root / f"{fake}-gone")
    assert not os.path.lexists(root / f"{fake}-1") and not os.path.lexists(root / f"{fake}-2")
    term.run("cd ..")
    term.prompt()  # the supervisor writes the state when the shell is at its prompt outside
    assert (home / ".bashrc").read_text() == rc
    assert (root / sid / "state").read_text() == "\n"
    assert term.screen().count("peninsula: denied") >= 4
    # Positive control: unconfined (outside the project) the same steps move
    # and replace the root; the supervisor's next write still goes to its own
    # directory (by the fd it holds), not through the planted state.new.
    try:
        term.run(f"mv {root} {moved} && ln -s {evil} {root}")
        assert moved.is_dir() and root.is_symlink()
        term.run("cd proj")
        term.prompt()
        assert (moved / sid / "state").read_text().endswith(f"\t{home / 'proj'}\n")
        assert (home / ".bashrc").read_text() == rc
    finally:
        if root.is_symlink() and moved.is_dir():
            root.unlink()
            moved.rename(root)
        subprocess.run(["rm", "-rf", str(evil)], check=False)


FAKE = r"""
import json, os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(sys.argv[1] + "/control.sock")
sock.listen(4)
open(sys.argv[1] + "/ready", "w").close()
while True:
    conn, _ = sock.accept()
    msg, fds, _, _ = socket.recv_fds(conn, 65536, 8)
    if not msg:  # a caller that looked and went
        conn.close()
        continue
    with open(sys.argv[1] + "/got", "a") as log:
        log.write(f"{json.loads(msg.splitlines()[0]).get('op')} fds={len(fds)}\n")
    for fd in fds:  # (kept, they would hold the caller's pipes open)
        os.close(fd)
    conn.sendall(json.dumps({"session": "fake", "shell_pid": 1, "shell_state": "not confined"}).encode() + b"\n")
    conn.close()
"""


def _listen(user, where: Path, confined: bool) -> subprocess.Popen:
    script = user.write(user.base / "fake.py", FAKE)
    argv = [SYSTEM_PYTHON, str(script), str(where)]
    if confined:
        argv = [SYSTEM_PYTHON, "-m", "peninsula", "run", "--", *argv]
    proc = subprocess.Popen(user.prefix() + argv, env=user.env(), cwd=user.base,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not (where / "ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the fake session did not start"
        time.sleep(0.05)
    return proc


def test_a_confined_listener_is_not_taken_for_a_session(user):
    root = Path(f"/tmp/peninsula-{user.uid}")
    if not root.exists():
        user.run(["mkdir", "-m", "700", str(root)])
    name = f"fake-{uuid.uuid4().hex[:8]}"
    for confined in (True, False):  # False: the positive control
        where = Path(f"/tmp/pt-fake-{uuid.uuid4().hex[:8]}")
        user.run(["mkdir", str(where)])
        proc = _listen(user, where, confined)
        try:
            # Planted at a session's name by an unconfined hand: what a
            # confined process could still offer is the listener itself.
            assert user.run(["ln", "-s", str(where), str(root / name)]).returncode == 0
            listed = [json.loads(line)["session"] for line in
                      user.peninsula("ps", "--json").stdout.decode().splitlines()]
            joined = user.peninsula("exec", "--session", name, "--", "true")
            got = (where / "got").read_text() if (where / "got").exists() else ""
            if confined:
                assert "fake" not in listed, listed
                assert joined.returncode != 0
                assert b"not served by a peninsula supervisor" in joined.stderr, joined.stderr
                assert got == "", got  # nothing was sent to it: no request, no terminal
            else:
                assert "fake" in listed, listed
                assert "exec fds=4" in got, got
        finally:
            proc.kill()
            proc.wait()
            os.unlink(root / name)
            subprocess.run(["rm", "-rf", str(where)], check=False)


def test_a_run_cannot_touch_the_session_root(user):
    root = Path(f"/tmp/peninsula-{user.uid}")
    if not root.exists():
        user.run(["mkdir", "-m", "700", str(root)])
    name = f"fake-{uuid.uuid4().hex[:8]}"
    result = user.peninsula("run", "--", "mkdir", str(root / name))
    assert result.returncode != 0 and not (root / name).exists()
    assert b"protected by" in result.stderr, result.stderr
    result = user.peninsula("run", "--", "mv", str(root), f"{root}.{name}")
    assert result.returncode != 0 and root.is_dir() and not os.path.lexists(f"{root}.{name}")
    # Positive control: the same mkdir and mv without peninsula.
    assert user.run(["mkdir", str(root / name)]).returncode == 0
    os.rmdir(root / name)
    assert user.run(["mv", str(root), f"{root}.{name}"]).returncode == 0
    os.rename(f"{root}.{name}", root)


def test_a_session_root_planted_by_someone_else_is_refused(user, home):
    """A root owned by another user, or one others may write: one line, no session."""
    runtime = user.mkdir(user.base / "rt")
    os.chmod(runtime, 0o700)
    planted = runtime / "peninsula"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)
    os.chown(planted, user.uid, user.gid)
    for owner in (user.uid, 0):  # world-writable; then a root-owned one
        os.chown(planted, owner, user.gid)
        if owner == 0:
            os.chmod(planted, 0o755)
        result = user.peninsula("shell", "--", "/bin/true", env={"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)})
        assert b"refusing to keep sessions there" in result.stderr, result.stderr
        assert os.listdir(planted) == []
    # Positive control: the same root, ours and 0700, is used.
    os.chown(planted, user.uid, user.gid)
    os.chmod(planted, 0o700)
    result = user.peninsula("shell", "--", "/bin/true", env={"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)})
    assert result.returncode == 0 and b"refusing" not in result.stderr, result.stderr
