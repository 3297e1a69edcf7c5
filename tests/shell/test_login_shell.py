"""A login shell (argv[0] "-bash": tmux's default command, `su -`, ssh) is
supervised: the hook passes that argv[0] as --argv0=VALUE, which argparse
cannot mistake for an option."""

import pytest

from .conftest import Term, supervised

LOGIN = {
    "bash": "shopt -q login_shell && echo login=yes",
    "zsh": "[[ -o login ]] && echo login=yes",
    "fish": "status is-login; and echo login=yes",
}


@pytest.mark.parametrize("shell", sorted(LOGIN))
def test_login_shell_is_supervised(user, home, shell):
    # bash reads .bash_profile, not .bashrc, as a login shell.
    user.write(home / ".bash_profile", ". ~/.bashrc\n")
    term = Term(user, home, shell)
    try:
        # No command: tmux starts default-shell ($SHELL) as a login shell, "-NAME".
        term.tmux("-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "60", "-c", str(home))
        term.tmux("set-option", "-g", "remain-on-exit", "on")
        supervised(term)
        text = term.run(LOGIN[shell])
        assert "login=yes" in text, text
        assert "unsupervised" not in text and "bad command line" not in text, text
    finally:
        term.close()
