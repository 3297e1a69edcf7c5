"""A confined process must not plant a socket at a protected name: a
socket in ~/.gnupg (S.gpg-agent when the agent is not running) would
answer the user's unconfined gpg later. The Landlock baseline allows
making sockets beneath the home, so bind() is trapped and judged like
mknod(S_IFSOCK) (supervisor/handlers/bind.py)."""

from __future__ import annotations

import os
import stat

from .conftest import supervised

BIND = ("python3 -c 'import os, socket; s = socket.socket(socket.AF_UNIX);"
        " s.bind(os.path.expanduser(\"~/.gnupg/S.planted\"))'")


def test_confined_bind_at_a_protected_name_is_refused(term_factory, home, user):
    user.mkdir(home / ".gnupg")
    os.chmod(home / ".gnupg", 0o700)
    planted = home / ".gnupg" / "S.planted"
    term = term_factory("bash")
    supervised(term)
    # Positive control: outside any project the same bind makes the socket.
    term.run(BIND)
    assert stat.S_ISSOCK(os.lstat(planted).st_mode)
    term.run("rm ~/.gnupg/S.planted")
    term.run("cd proj")
    term.prompt()
    term.run(BIND)
    assert "denied bind of" in term.screen() and "PermissionError" in term.screen(), term.screen()
    assert not os.path.lexists(planted), term.screen()
