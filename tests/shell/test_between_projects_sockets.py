"""A line typed between projects (`cd ~/p2; tool` in p1, before the next
prompt) runs strict, with p1's environment still loaded (PATH: p1's own
tool; TMUX_TMPDIR: p1's socket dir). Strict between projects is refused
every socket place a project is refused: the user's server places
(/tmp/tmux-UID) and every project's socket dir. Only an orphan never seen
(a daemon) keeps those writable (README's limits). Controls: the same tool
binds there unconfined, and p1's own socket dir from p1; the strict line
still writes the temp dirs, and still not p2.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from .conftest import furnish, Term, supervised

TOOL = "#!/usr/bin/python3\nimport socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\nprint('planted', sys.argv[1])\n"


@pytest.fixture
def layout(user):
    home = user.mkdir(user.base / "home")
    p1, p2 = (user.mkdir(home / name) for name in ("p1", "p2"))
    user.write(p1 / ".envrc", "PATH_add bin\n")
    user.write(p2 / ".peninsula.toml", "")
    user.mkdir(p1 / "bin")
    os.chmod(user.write(p1 / "bin" / "tool", TOOL), 0o755)
    furnish(user, home, [p1])
    tmux = Path(f"/tmp/tmux-{user.uid}")
    if not tmux.exists():
        user.mkdir(tmux)
        os.chmod(tmux, 0o700)
    return home


def _sock_dir(term: Term) -> str:
    marker = "sockdir="
    term.run(f'echo "{marker}$TMUX_TMPDIR"')
    lines = [line for line in term.screen().splitlines() if line.startswith(marker)]
    return lines[-1][len(marker):]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_a_line_typed_between_projects_cannot_plant_the_users_or_a_projects_socket(user, layout, shell):
    home = layout
    tag = uuid.uuid4().hex[:8]
    users = f"/tmp/tmux-{user.uid}/pt-between-{tag}"
    temp = Path(f"/tmp/pt-between-{tag}")
    made: list[str] = []
    term = Term(user, home, shell).start()
    try:
        supervised(term)
        # Control: unconfined, the same tool binds in the user's tmux dir.
        term.run(f"~/p1/bin/tool {users}-outside")
        made.append(f"{users}-outside")
        assert os.path.lexists(f"{users}-outside"), term.screen()
        term.run("cd ~/p1")
        term.prompt()
        own = _sock_dir(term)
        assert own.startswith(f"/tmp/peninsula-sockets-{user.uid}/"), term.screen()
        made.append(f"{own}/pt-{tag}-own")
        term.run(f"tool {users}-p1; tool {own}/pt-{tag}-own")
        assert not os.path.lexists(f"{users}-p1"), term.screen()
        assert os.path.lexists(f"{own}/pt-{tag}-own"), term.screen()  # control: p1's own dir from p1
        made.append(f"{own}/pt-{tag}-between")
        temp.mkdir()
        os.chown(temp, user.uid, user.gid)
        # zsh's direnv hook also runs at chpwd: p1's PATH is gone after the cd.
        tool = "~/p1/bin/tool" if shell == "zsh" else "tool"
        term.run(f"cd ~/p2; {tool} {users}; {tool} {own}/pt-{tag}-between; {tool} {temp}/ok; touch ~/p2/made-{tag}")
        screen = term.screen()
        assert not os.path.lexists(users), screen
        assert not os.path.lexists(f"{own}/pt-{tag}-between"), screen
        assert os.path.lexists(temp / "ok"), screen  # the strict line ran, and writes the temp dirs
        assert not (home / "p2" / f"made-{tag}").exists(), screen  # ...and is strict, not p2's yet
        assert f"denied bind of {users}" in screen, screen
    finally:
        term.close()
        for path in (users, *made):
            if os.path.lexists(path):
                os.unlink(path)
        shutil.rmtree(temp, ignore_errors=True)
