"""State files (histories, viminfo, less history) are content-only allowances.

Issue 17 class 6: a confined process must not replace an allowed state file
by a symlink (or hard link, directory, FIFO) that the unconfined tool later
writes through. Issue 13 item 4: the real tools still write their state
inside a project, through the temporary names they rename onto it, with zero
denial lines.
"""

import os
import re
import stat

from .conftest import supervised

DENIED = "peninsula: denied"


def _log(home):
    path = home / ".local" / "state" / "peninsula" / "denials.jsonl"
    return path.read_text() if path.exists() else ""


def test_history_cannot_be_replaced_by_a_link_to_an_rc_file(term_factory, home, user):
    term = term_factory("bash")
    supervised(term)
    rc = (home / ".bashrc").read_text()
    user.write(home / ".bash_history", "echo old\n")
    user.write(home / "proj" / "f", "project file\n")
    term.run("cd proj")
    # Each step of the attack, each refused (rm alone is allowed: vim unlinks
    # .viminfo before renaming onto it, and a missing name sends nothing anywhere).
    term.run("mv ~/.bash_history ~/proj/moved")
    assert not (home / "proj" / "moved").exists()
    term.run("rm ~/.bash_history")
    for attack in ("ln -s ~/.bashrc ~/.bash_history", "ln ~/proj/f ~/.bash_history",
                   "mkdir ~/.bash_history", "mkfifo ~/.bash_history",
                   "ln -s ~/.bashrc ~/.lesshsQ", "ln -s ~/.bashrc ~/.python_history-1.tmp",
                   "mv ~/proj/f ~/.bash_history"):
        term.run(attack)
        assert not os.path.lexists(home / ".bash_history"), attack
    assert not os.path.lexists(home / ".lesshsQ")
    assert not os.path.lexists(home / ".python_history-1.tmp")
    text = term.screen()
    assert text.count(DENIED) >= 8, text
    assert "is a state file" in text
    # What the attack was for: the shell's own history write goes to .bashrc.
    term.run("history -w")
    assert (home / ".bashrc").read_text() == rc
    assert stat.S_ISREG(os.lstat(home / ".bash_history").st_mode)
    # Positive control: unconfined, the same step works, and history -w then
    # writes the typed commands into .bashrc.
    term.run("cd ..")
    term.run("rm ~/.bash_history; ln -s ~/.bashrc ~/.bash_history")
    assert os.path.islink(home / ".bash_history")
    term.run("history -w; rm ~/.bash_history")
    assert (home / ".bashrc").read_text() != rc


def test_tools_write_their_state_inside_a_project_with_zero_denials(term_factory, home):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    for _ in range(2):  # the second run finds the file and goes through its temporary name
        term.run("history -s typed-in-project; history -w")
        term.run("vim -u NONE -es -c \"set nocompatible history=20 viminfo='100,:20,n~/.viminfo\" -c 'call histadd(\":\", \"seen\")' -c wviminfo -c q")
        term.keys("-l", "/usr/bin/python3 -q")
        term.keys("Enter")
        term.wait_for(r"^>>> $")
        term.keys("-l", "6*7")
        term.keys("Enter")
        term.wait_for(r"^42$")
        term.keys("-l", "exit()")
        term.keys("Enter")
        term.prompt()
        term.keys("-l", "less .envrc")
        term.keys("Enter")
        term.wait_for(r"PROJ_LOADED")
        term.keys("-l", "/LOADED")
        term.keys("Enter")
        term.keys("q")
        term.prompt()
    assert "typed-in-project" in (home / ".bash_history").read_text()
    assert "seen" in (home / ".viminfo").read_text()
    assert "6*7" in (home / ".python_history").read_text()
    assert "LOADED" in (home / ".lesshst").read_text()
    for name in (".bash_history", ".viminfo", ".python_history", ".lesshst"):
        assert stat.S_ISREG(os.lstat(home / name).st_mode)
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp") or p.name == ".lesshsQ"]
    assert DENIED not in term.screen()
    assert _log(home) == ""


def test_zsh_history_through_its_lock_and_new_file(term_factory, home):
    term = term_factory("zsh")
    supervised(term)
    term.run("cd proj")
    term.run("HISTFILE=~/.zsh_history SAVEHIST=100 HISTSIZE=100; print -s typed-in-project; fc -W; fc -W")
    assert "typed-in-project" in (home / ".zsh_history").read_text()
    assert not os.path.lexists(home / ".zsh_history.LOCK")
    assert not os.path.lexists(home / ".zsh_history.new")
    assert DENIED not in term.screen()
    assert _log(home) == ""
    term.run("ln -s ~/.zshrc ~/.zsh_history.new")
    assert not os.path.lexists(home / ".zsh_history.new")
    assert DENIED in term.screen()


def test_fish_history_through_its_temporary_file(term_factory, home):
    term = term_factory("fish")
    supervised(term)
    term.run("cd proj")
    term.run("echo typed-in-project")
    term.run("history save; history merge")
    history = home / ".local" / "share" / "fish" / "fish_history"
    assert "typed-in-project" in history.read_text()
    assert stat.S_ISREG(os.lstat(history).st_mode)
    assert DENIED not in term.screen()
    assert _log(home) == ""
    # fish's own temporary name cannot be aimed at its config either.
    term.run("ln -s ~/.config/fish/config.fish ~/.local/share/fish/fish_history.abcdef")
    assert not os.path.lexists(home / ".local" / "share" / "fish" / "fish_history.abcdef")
    assert DENIED in term.screen()


RACE = r'''
import os, sys, threading, time
home = os.path.expanduser("~")
state, temp, rc = home + "/.lesshst", home + "/.lesshsQ", home + "/.bashrc"
stop = time.monotonic() + 2
won = {"tool": 0, "link": 0}

def tool():  # what less does: write the temporary name, rename it onto the state name
    while time.monotonic() < stop:
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, b".less-history-file:\n")
            os.close(fd)
            os.rename(temp, state)
            won["tool"] += 1
        except OSError:
            pass

def attacker():  # aim either name at the rc file, in every way
    while time.monotonic() < stop:
        for step in (lambda: os.symlink(rc, temp), lambda: os.symlink(rc, state),
                     lambda: (os.unlink(state), os.symlink(rc, state))):
            try:
                step()
                won["link"] += 1
            except OSError:
                pass
        for name in (temp, state):
            if os.path.islink(name):
                won["link"] += 1
                os.unlink(name)

threads = [threading.Thread(target=tool), threading.Thread(target=attacker), threading.Thread(target=attacker)]
for t in threads: t.start()
for t in threads: t.join()
print("race tool=%d link=%d" % (won["tool"], won["link"]))
'''


def test_symlink_race_against_the_tools_rename(term_factory, home, user):
    user.write(home / "race.py", RACE)
    rc = (home / ".bashrc").read_text()
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    text = term.run("/usr/bin/python3 ~/race.py 2>/dev/null", timeout=60)
    tool, link = map(int, re.search(r"^race tool=(\d+) link=(\d+)", text, re.M).groups())
    assert tool > 0 and link == 0, text
    assert (home / ".bashrc").read_text() == rc
    # Positive control: unconfined, the attacker wins some rounds.
    term.run("cd ..")
    text = term.run("/usr/bin/python3 ~/race.py 2>/dev/null; rm -f ~/.lesshst ~/.lesshsQ", timeout=60)
    assert int(re.findall(r"^race tool=\d+ link=(\d+)", text, re.M)[-1]) > 0, text
