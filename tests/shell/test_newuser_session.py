"""Issue 18 items 3-7 and 9, as a new user meets them inside a supervised
shell (real bash, zsh, fish in tmux, the plain test user)."""

import re

import pytest

from .conftest import SHELLS, supervised

OUT = "python3 -m peninsula"


def _notices(text: str) -> list[str]:
    return [l for l in text.splitlines() if l.startswith("peninsula: denied")]


def test_doctor_inside_a_session_reports_the_session(term_factory, home, user):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    text = term.run(f"{OUT} doctor; echo rc=$?")
    assert "enforced: NOTHING" not in text
    assert re.search(r"seccomp user-notify: in use by this session's supervisor \(pid \d+\)", text), text
    assert f"commands started here now: confined to {home / 'proj'}" in text
    assert "enforced: writes confined" in text
    assert "rc=0" in text
    # Control: outside any session the same command probes the kernel.
    plain = user.peninsula("doctor", env={"HOME": str(home)})
    assert b"seccomp user-notify: available" in plain.stdout, plain


def test_denial_hint_names_a_command_that_works_where_it_is_printed(term_factory, home, user):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    text = term.run("echo x > ../out/hinted")
    line = _notices(text)[-1]
    project = home / "proj"
    command = f"peninsula allow {home / 'out' / 'hinted'} --project {project}"
    assert f"run `{command}` at a prompt outside the project or in another terminal" in line, line
    # Inside, that command is refused, and the refusal says where to run it.
    refused = term.run(f"python3 -m {command.replace('peninsula', 'peninsula', 1)}; echo rc=$?")
    assert "refused: this command runs confined" in refused and "rc=125" in refused
    assert f"Run `{command}` at a prompt outside the project" in refused
    # Run as printed, from another terminal (a process outside the session).
    result = user.run(["/usr/bin/python3", "-m", *command.split()], env={"HOME": str(home)}, cwd=home)
    assert result.returncode == 0, result
    assert f"{project} may now write {home / 'out' / 'hinted'}".encode() in result.stdout
    term.prompt()
    term.run("echo y > ../out/hinted")
    assert (home / "out" / "hinted").read_text() == "y\n"


def test_allow_of_a_protected_path_is_refused_and_never_suggested(term_factory, home, user):
    config = home / ".config" / "peninsula" / "config.toml"
    before = config.read_text()
    for path in ("~/.bashrc", "~/.config/fish/fish_variables"):
        result = user.peninsula("allow", path, "--global", env={"HOME": str(home)}, cwd=home)
        assert result.returncode == 125, result
        assert b"is protected" in result.stderr and b"nothing was changed" in result.stderr
        assert b"may now write" not in result.stdout
    assert config.read_text() == before
    # Control: an unprotected path is allowed.
    result = user.peninsula("allow", "~/out/ok", "--global", env={"HOME": str(home)}, cwd=home)
    assert result.returncode == 0 and b"may now write" in result.stdout, result
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    text = term.run("echo x >> ~/.bashrc; echo y > ~/.config/fish/fish_variables")
    lines = _notices(text)
    assert len(lines) == 2, text
    for line in lines:
        assert "peninsula allow" not in line and "cannot be allowed" in line, line


def test_allow_project_dir_from_outside(user, home):
    result = user.peninsula("allow", "~/out/x", "--project", str(home / "proj"), env={"HOME": str(home)}, cwd=home)
    assert result.returncode == 0, result
    assert str(home / "out" / "x") in (home / "proj" / ".peninsula.toml").read_text()
    nowhere = user.peninsula("allow", "~/out/x", env={"HOME": str(home)}, cwd=home)
    assert nowhere.returncode == 125 and b"--project DIR" in nowhere.stderr


def test_an_allowance_that_does_not_exist_yet_is_created(user, home):
    project = home / "proj"
    cache = home / ".cache" / "pip"
    assert not cache.exists() and not cache.parent.exists()
    result = user.peninsula("run", "--write", str(cache), "--", "sh", "-c", f"mkdir -p {cache}/wheels && echo ok",
                            cwd=project, env={"HOME": str(home)})
    assert result.returncode == 0, result
    assert f"peninsula: created {cache}".encode() in result.stderr
    assert b"denied" not in result.stderr
    assert (cache / "wheels").is_dir() and cache.stat().st_uid == user.uid
    assert cache.stat().st_mode & 0o777 == 0o755  # the user's umask (022)
    npm = user.peninsula("run", "--profile", "npm", "--", "sh", "-c", f"mkdir -p {home}/.npm/_cacache",
                         cwd=project, env={"HOME": str(home)})
    assert npm.returncode == 0 and (home / ".npm" / "_cacache").is_dir(), npm
    # A protected one is not created, and nothing hints at it.
    guarded = user.peninsula("run", "--write", str(home / ".ssh"), "--", "sh", "-c", f"mkdir {home}/.ssh",
                             cwd=project, env={"HOME": str(home)})
    assert guarded.returncode == 1 and not (home / ".ssh").exists()
    assert b"allow with" not in guarded.stderr
    # One that cannot be created is said plainly, exit 125.
    cannot = user.peninsula("run", "--write", "/etc/peninsula-nope", "--", "true", cwd=project, env={"HOME": str(home)})
    assert cannot.returncode == 125 and b"cannot be created: Permission denied" in cannot.stderr, cannot


STARSHIP_STANDIN = r'''#!/bin/sh
# What starship does at every prompt: its cache dir and a session log there,
# then git state. (starship itself is not packaged for this machine.)
mkdir -p "$HOME/.cache/starship" || exit 1
echo "prompt at $(date +%s)" >> "$HOME/.cache/starship/session_${STARSHIP_SESSION_KEY:-0}.log" || exit 1
branch=$(git symbolic-ref --short HEAD 2>/dev/null)
git status --porcelain >/dev/null 2>&1
printf '[star %s] ' "$branch"
'''

PROMPTS = {
    "bash": "source /usr/lib/git-core/git-sh-prompt\nGIT_PS1_SHOWDIRTYSTATE=1\nGIT_PS1_SHOWUNTRACKEDFILES=1\n"
            "PS1='$(starship-standin)$(__git_ps1 \"(%s)\")'\"$PS1\"\n",
    "zsh": "autoload -Uz vcs_info\nzstyle ':vcs_info:*' check-for-changes true\n"
           "precmd_functions+=(vcs_info)\nPS1='$(starship-standin)${vcs_info_msg_0_}'$PS1\n",
    "fish": "function fish_prompt; starship-standin; fish_git_prompt; echo -n \"$PENINSULA_PROMPT\"(prompt_pwd)'> '; end\n",
}


@pytest.mark.parametrize("shell", SHELLS)
def test_prompt_tools_give_no_notices(term_factory, home, user, shell):
    bindir = user.mkdir(home / "bin")
    tool = user.write(bindir / "starship-standin", STARSHIP_STANDIN)
    tool.chmod(0o755)
    user.mkdir(home / ".cache")  # every real home has one
    rc = {"bash": ".bashrc", "zsh": ".zshrc", "fish": ".config/fish/config.fish"}[shell]
    user.write(home / rc, (home / rc).read_text() + PROMPTS[shell])
    project = home / "proj"
    for args in (["init", "-q", "-b", "main"], ["add", ".envrc"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        assert user.run(["git", *args], cwd=project, env={"HOME": str(home)}).returncode == 0
    user.write(project / "dirty", "x")
    term = term_factory(shell, env={"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin"})
    supervised(term)
    term.run("cd proj")
    for _ in range(3):
        term.prompt()
    text = term.run(f"{OUT} status")
    assert "confined to " + str(project) in text
    assert "[star main]" in text
    assert not [l for l in text.splitlines() if l.startswith("peninsula:")], text
    assert (home / ".cache" / "starship" / "session_0.log").read_text().count("prompt at") >= 4


def test_status_shows_trust_and_the_reminder_comes_after_every_change(term_factory, home, user):
    config = home / "proj" / ".peninsula.toml"
    user.write(config, 'write = ["../out/a"]\n')
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    text = term.run(f"{OUT} status")
    assert f"project config: {config}: NOT trusted" in text
    first = term.run("echo 1 > ../out/a")
    assert first.count("is not trusted: its allowances are ignored") == 1
    term.run("echo 'write = [\"../out/b\"]' > .peninsula.toml")
    term.prompt()
    second = term.run("echo 2 > ../out/b")
    assert second.count("is not trusted: its allowances are ignored") == 2, second
    result = user.peninsula("trust", str(home / "proj"), env={"HOME": str(home)}, cwd=home)
    assert result.returncode == 0, result
    term.prompt()
    text = term.run(f"{OUT} status")
    assert f"project config: {config}: trusted" in text


def test_trust_on_the_line_that_leaves_is_refused_and_says_why(term_factory, home, user):
    config = home / "proj" / ".peninsula.toml"
    user.write(config, 'write = ["../out/t"]\n')
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    text = term.run(f"cd ~ && {OUT} trust proj; echo rc=$?")
    assert "rc=125" in text and "on a line of its own" in text, text
    assert f"Run `peninsula trust {home / 'proj'}`" in text, text
    term.prompt()  # now the shell is confirmed outside
    text = term.run(f"{OUT} trust proj; echo rc=$?")
    assert "rc=0" in text and f"trusted {config}" in text, text


def test_broken_project_config_keeps_its_protections(term_factory, home, user):
    config = home / "proj" / ".peninsula.toml"
    user.write(config, 'protect = ["secret"]\n')
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.run("echo a > secret")
    assert not (home / "proj" / "secret").exists()
    user.write(config, 'protect = ["secret"\n')  # a typo
    term.prompt()
    text = term.run("echo b > secret")
    assert f"{config}:1: missing ']'" in text and "keeping its last good protections" in text, text
    assert not (home / "proj" / "secret").exists()
    text = term.run(f"{OUT} status")
    assert f"project config: {config}:1: missing ']'" in text, text
    # Control: fixed, without the protection, the write goes through.
    user.write(config, "protect = []\n")
    term.prompt()
    term.run("echo c > secret")
    assert (home / "proj" / "secret").read_text() == "c\n"


def test_user_config_allowance_gets_its_missing_parents(term_factory, home, user):
    config = home / ".config" / "peninsula" / "config.toml"
    wanted = home / ".cache" / "tool" / "data"
    user.write(config, config.read_text() + f'write = ["{wanted}"]\n')
    term = term_factory("bash")
    supervised(term)
    assert f"peninsula: created {wanted.parent}" in term.screen()
    assert wanted.parent.is_dir() and not wanted.exists()  # the allowance itself may be a file
    term.run("cd proj")
    text = term.run(f"mkdir {wanted} && echo made")
    assert "made" in text and "peninsula: denied" not in text, text
