"""The places the user's own clients find their servers by, as the run
started with them (defaults._sockets_named_by_env): a confined process
cannot replace the ssh agent's socket (the next `ssh-add` outside would
hand the fake the private key) nor plant in a tmux socket dir named by
$TMUX_TMPDIR (the client sends a fake server its whole environment)."""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

from socket_plant import PLANT, ROUTES, results as _results

from .helpers import PY


UNLINK = "import errno, os, sys\ntry:\n    os.unlink(sys.argv[1]); print('ok')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n"


def _agent(who) -> tuple[str, int]:
    out = who.run(["ssh-agent", "-s"]).stdout.decode()
    sock = re.search(r"SSH_AUTH_SOCK=([^;]+);", out).group(1)
    pid = int(re.search(r"SSH_AGENT_PID=(\d+);", out).group(1))
    return sock, pid


def test_the_ssh_agents_socket_cannot_be_replaced(who):
    sock, pid = _agent(who)
    staging = who.mkdir(Path(f"/tmp/pt-agent-stage-{os.getpid()}"))
    try:
        env = {"SSH_AUTH_SOCK": sock}
        planted = str(Path(sock).parent / "planted")
        # Positive control: unconfined, a socket can be put beside the agent's.
        control = who.run([PY, "-c", PLANT, staging, planted], env=env)
        assert set(_results(control).values()) == {"ok"}, control
        # Confined (/tmp writable), the agent's directory is protected, and
        # unlinking the agent's own socket is refused.
        confined = who.peninsula("run", "--", PY, "-c", PLANT, staging, planted, env=env, cwd=who.base)
        assert _results(confined) == {(r, planted): "EACCES" for r in ROUTES}, confined
        unlink = who.peninsula("run", "--", PY, "-c", UNLINK, sock, env=env, cwd=who.base)
        assert unlink.stdout.split() == [b"EACCES"], unlink
        assert "protected by" in confined.stderr.decode(), confined
        assert os.path.exists(sock)
        assert who.run(["ssh-add", "-l"], env=env).returncode in (0, 1)  # the agent still answers (1: no keys)
    finally:
        os.kill(pid, signal.SIGTERM)
        shutil.rmtree(staging, ignore_errors=True)


def test_a_tmux_dir_named_by_tmux_tmpdir_is_protected(who):
    base = who.mkdir(who.base / "rt")
    tmuxdir = who.mkdir(base / f"tmux-{who.uid}")
    os.chmod(tmuxdir, 0o700)
    env = {"TMUX_TMPDIR": str(base)}
    target = str(tmuxdir / "default")
    control = who.run([PY, "-c", PLANT, str(base), target], env=env)
    assert set(_results(control).values()) == {"ok"}, control
    confined = who.peninsula("run", "--write", base, "--", PY, "-c", PLANT, str(base), target, env=env, cwd=who.base)
    assert _results(confined) == {(r, target): "EACCES" for r in ROUTES}, confined
    assert not os.path.lexists(target)


def test_a_symlink_to_the_agent_and_an_agent_not_named_are_protected(who):
    """The screen/tmux recipe `ln -sf $SSH_AUTH_SOCK /tmp/agent-link`: the
    link's own name is protected (protections are resolved, so the plain
    name would mean the agent's socket). And an agent the run was not told
    about (started in another terminal) lives in ssh-agent's own /tmp/ssh-*
    directory, protected as such."""
    sock, pid = _agent(who)
    link = f"/tmp/pt-agent-link-{os.getpid()}"
    try:
        os.symlink(sock, link)
        os.lchown(link, who.uid, who.gid)
        # Positive control: unconfined, the link can be replaced.
        assert who.run([PY, "-c", UNLINK, link]).stdout.split() == [b"ok"]
        os.symlink(sock, link)
        os.lchown(link, who.uid, who.gid)
        confined = who.peninsula("run", "--", PY, "-c", UNLINK, link, env={"SSH_AUTH_SOCK": link}, cwd=who.base)
        assert confined.stdout.split() == [b"EACCES"], confined
        assert os.path.islink(link)
        # An agent not named by SSH_AUTH_SOCK: its socket cannot be removed.
        unnamed = who.peninsula("run", "--", PY, "-c", UNLINK, sock, env={"SSH_AUTH_SOCK": ""}, cwd=who.base)
        assert unnamed.stdout.split() == [b"EACCES"] and os.path.exists(sock), unnamed
    finally:
        os.kill(pid, signal.SIGTERM)
        if os.path.lexists(link):
            os.unlink(link)
