"""Issue 18 items 1-2, as a new user meets them in real bash, zsh and fish:
whatever stops the supervisor from starting, the terminal stays open with a
working shell and one line naming file, line and what is wrong; the re-exec
keeps the shell's own arguments and runs the rc file once in effect."""

import re

import pytest

from .conftest import SHELLS, supervised

NO_LANDLOCK_WRAPPER = r'''
import errno, os, sys
import pyseccomp as sc
flt = sc.SyscallFilter(sc.ALLOW)
for name in ("landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"):
    flt.add_rule(sc.ERRNO(errno.ENOSYS), name)
flt.load()
os.execvp(sys.argv[1], sys.argv[1:])
'''


def _alive_unsupervised(term) -> str:
    text = term.run('echo "alive session=[$PENINSULA_SESSION]"')
    assert re.search(r"^alive session=\[\]", text, re.M), text
    return text


@pytest.mark.parametrize("shell", SHELLS)
def test_config_typo_leaves_a_working_shell_and_one_line(term_factory, home, user, shell):
    config = home / ".config" / "peninsula" / "config.toml"
    user.write(config, f'baseline = ["{home}"\nwrite = []\n')
    term = term_factory(shell)
    text = _alive_unsupervised(term)
    lines = [l for l in text.splitlines() if l.startswith("peninsula:")]
    assert lines == [f"peninsula: starting this shell UNSUPERVISED: {config}:1: missing ']': "
                     f"the '[' in `baseline = [\"{home}\"` is not closed before line 2"], text
    assert "Traceback" not in text
    # `peninsula check` says the same, without a traceback, exit 125.
    result = user.peninsula("check", "x", env={"HOME": str(home)}, cwd=home)
    assert result.returncode == 125, result
    assert result.stderr.decode().startswith(f"peninsula: {config}:1: missing ']'"), result.stderr
    assert b"Traceback" not in result.stderr


@pytest.mark.parametrize("shell", ["bash", "fish"])
def test_missing_module_leaves_a_working_shell(term_factory, home, user, shell):
    # A dependency that cannot be imported (here: tomlkit, which reads the
    # user config, shadowed by one that fails). pyseccomp no longer serves:
    # the filter comes from the cache setup.sh fills, so no start imports it.
    shadow = user.mkdir(user.base / "shadow")
    user.write(shadow / "tomlkit.py", "raise ModuleNotFoundError(\"No module named 'tomlkit'\")\n")
    term = term_factory(shell, env={"PYTHONPATH": f"{shadow}:{user.runtime}"})
    text = _alive_unsupervised(term)
    lines = [l for l in text.splitlines() if l.startswith("peninsula:")]
    assert len(lines) == 1, text
    assert "UNSUPERVISED: internal error: ModuleNotFoundError: No module named 'tomlkit' (" in lines[0], lines
    assert "tomlkit.py:1)" in lines[0]


def test_kernel_without_landlock_leaves_a_working_shell(term_factory, home, user):
    wrapper = user.write(user.base / "nolandlock.py", NO_LANDLOCK_WRAPPER)
    term = term_factory("bash", argv=["/usr/bin/python3", str(wrapper), "bash", "-i"])
    text = _alive_unsupervised(term)
    lines = [l for l in text.splitlines() if l.startswith("peninsula:")]
    assert len(lines) == 1 and "UNSUPERVISED: Landlock" in lines[0], text


def test_control_the_same_terminal_supervises_without_the_faults(term_factory, home, user):
    term = term_factory("bash")
    supervised(term)
    assert "UNSUPERVISED" not in term.screen()


@pytest.mark.parametrize("shell", SHELLS)
def test_rc_runs_once_in_effect(term_factory, home, user, shell):
    rc = {"bash": ".bashrc", "zsh": ".zshrc", "fish": ".config/fish/config.fish"}[shell]
    path = home / rc
    text = path.read_text()
    if shell == "fish":
        text = "set -gx PATH /opt/venv-marker/bin $PATH\n" + text.replace("set -g fish_greeting ''\n", "set -g fish_greeting 'hello-greeting'\n")
    else:
        text = 'export PATH="/opt/venv-marker/bin:$PATH"\n' + text
    user.write(path, text)
    # tmux starts the command with $SHELL -c: a `fish -c` would read
    # config.fish first and hand its PATH down. A terminal starts fish itself.
    term = term_factory(shell, env={"SHELL": "/bin/sh"})
    supervised(term)
    shown = term.run('echo "path=$PATH"')
    line = [l for l in shown.splitlines() if l.startswith("path=")][0]
    assert line.count("/opt/venv-marker/bin") == 1, line
    if shell == "fish":
        assert term.screen().count("hello-greeting") == 1, term.screen()


def test_bash_rcfile_is_kept_across_the_reexec(term_factory, home, user):
    # An editor's shell integration: bash --rcfile FILE -i
    rcfile = user.write(home / "editor-rc", 'echo "editor-integration-loaded"\n'
                        f'source {home}/.bashrc\n')
    term = term_factory("bash", argv=["bash", "--rcfile", str(rcfile), "-i"])
    supervised(term)
    text = term.run('echo "loaded=$(grep -c . /dev/null)"')
    assert text.count("editor-integration-loaded") == 2  # before and after the re-exec
    cmdline = term.run("tr '\\0' ' ' < /proc/$$/cmdline; echo")
    assert f"--rcfile {rcfile} -i" in cmdline, cmdline


def test_login_shell_stays_a_login_shell(term_factory, home, user):
    user.write(home / ".bash_profile", "source ~/.bashrc\n")
    term = term_factory("bash", argv=["bash", "-l"])
    supervised(term)
    text = term.run("shopt -q login_shell && echo is-login-shell")
    assert re.search(r"^is-login-shell", text, re.M), text


BREAK_AFTER_FORK = '''
import sys
class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name == "peninsula.shell.judge":
            raise ModuleNotFoundError("No module named 'peninsula.shell.judge'")
        return None
sys.meta_path.insert(0, _Missing())
'''


def test_failure_after_the_shell_was_forked_leaves_one_shell(term_factory, home, user):
    # The supervisor fails after it started the confined shell but before
    # serving it: that shell is ended, and one unsupervised shell remains.
    shadow = user.mkdir(user.base / "shadow")
    user.write(shadow / "sitecustomize.py", BREAK_AFTER_FORK)
    term = term_factory("bash", env={"PYTHONPATH": f"{shadow}:{user.runtime}"})
    text = _alive_unsupervised(term)
    lines = [l for l in text.splitlines() if l.startswith("peninsula:")]
    assert len(lines) == 1 and "No module named 'peninsula.shell.judge'" in lines[0], text
    ps = term.run("ps -t \"$(tty)\" -o comm= | grep -c '^bash$'")
    counts = [l for l in ps.splitlines() if l.strip().isdigit()]
    assert counts[-1] == "1", ps  # one shell on this terminal, no stray confined one
