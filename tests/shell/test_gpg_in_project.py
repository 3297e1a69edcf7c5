"""gpg inside a project, through the user's own gpg-agent outside (issue 13).

~/.gnupg stays protected (its conf files name programs gpg and its agent
run), but gpg takes lock files there even to sign or verify, and writes
its random seed on an encryption: those names alone are writable, with the
state-allowance rules. The trust database stays protected (its ownertrust
decides which signatures git calls good): a verify reads it only. Each
shell, as root and as a plain user; then every way to turn those names into
code or a planted file, refused, with the same steps working unconfined
(the positive control).
"""

from __future__ import annotations

import os
import re

import pytest

from .conftest import PENINSULA, RC, SHELLS, Term, supervised

DENIED = "peninsula: denied"


@pytest.fixture
def gpg_home(who):
    """A home with a project, the shells' rc files, a signing key, and the
    key's gpg-agent running outside any sandbox (left by the key's making)."""
    home = who.mkdir(who.base / "home")
    os.chmod(home, 0o700)
    project = who.mkdir(home / "proj")
    who.write(project / ".envrc", "export PROJ_LOADED=1\n")
    for rel, text in RC.values():
        who.mkdir((home / rel).parent)
        who.write(home / rel, text.format(p=PENINSULA))
    who.mkdir(home / ".config" / "peninsula")
    who.write(home / ".config" / "peninsula" / "config.toml", f'baseline = ["{home}"]\n')
    who.write(home / ".gitconfig", "[user]\n\tname = Pen\n\temail = pt@example.org\n\tsigningkey = pt@example.org\n"
                                   "[init]\n\tdefaultBranch = main\n")
    for path in [home, *home.rglob("*")]:
        os.lchown(path, who.uid, who.gid)
    env = {"HOME": str(home)}
    assert who.run(["direnv", "allow", str(project)], cwd=project, env=env).returncode == 0
    gen = who.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", "Pen Test <pt@example.org>",
                   "ed25519", "sign", "never"], env=env)
    assert gen.returncode == 0, gen.stderr
    listed = who.run(["gpg", "--list-keys", "--with-colons", "pt@example.org"], env=env).stdout.decode()
    fingerprint = re.search(r"^fpr:+([0-9A-F]+):", listed, re.M).group(1)
    sub = who.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-add-key", fingerprint, "cv25519", "encr",
                   "never"], env=env)
    assert sub.returncode == 0, sub.stderr
    yield home
    who.run(["gpgconf", "--kill", "gpg-agent"], env=env)


def _agent_pid(who, home) -> str:
    out = who.run(["gpg-connect-agent", "getinfo pid", "/bye"], env={"HOME": str(home)}).stdout.decode()
    return re.search(r"^D (\d+)$", out, re.M).group(1)


def _only_trustdb_denied(text: str, home) -> None:
    """The denials in text, if any, are all gpg's open of the trust database."""
    denied = [line for line in text.splitlines() if DENIED in line]
    assert denied, text  # gpg opens it to update it on each verify and encryption
    assert all(re.fullmatch(rf"{DENIED} open of {re.escape(str(home / '.gnupg' / 'trustdb.gpg'))} by gpg \(pid \d+\): "
                            r".*\bprotected\b.*", line) for line in denied), text


@pytest.mark.parametrize("shell", SHELLS)
def test_signed_commit_in_a_project_through_the_outside_agent(who, gpg_home, shell):
    agent = _agent_pid(who, gpg_home)
    term = Term(who, gpg_home, shell).start()
    try:
        supervised(term)
        term.run("cd ~/proj")
        term.prompt()
        text = term.run("git init -q r && cd r && echo s > s.txt && git add s.txt && git commit -S -qm signed; cd ~/proj",
                        timeout=60)
        assert DENIED not in text.split("git commit -S -qm signed; cd ~/proj")[-1], text
        # A verify would update the trust database, which stays protected:
        # gpg says it reads it only and verifies; the denied open is noticed.
        text = term.run("git -C r verify-commit HEAD > verify.log 2>&1; git -C r log -1 --show-signature > shown.log 2>&1",
                        timeout=60)
        for log in ("verify.log", "shown.log"):
            said = (gpg_home / "proj" / log).read_text()
            assert 'Good signature from "Pen Test <pt@example.org>" [ultimate]' in said, said
            assert "gpg: Note: trustdb not writable" in said, said
        _only_trustdb_denied(text.split("shown.log 2>&1")[-1], gpg_home)
        # An encryption (gpg writes its random seed) and a decryption through the agent.
        seed = gpg_home / ".gnupg" / "random_seed"
        seed_before = seed.stat().st_mtime_ns if seed.exists() else None
        text = term.run("echo secret > plain && gpg -q --batch -e -r pt@example.org -o plain.gpg plain"
                        " && gpg -q --batch -d plain.gpg > decrypted", timeout=60)
        _only_trustdb_denied(text.split("plain.gpg > decrypted")[-1], gpg_home)
        assert (gpg_home / "proj" / "decrypted").read_text() == "secret\n", text.strip()
        assert seed.is_file() and seed.stat().st_mtime_ns != seed_before
        shown = who.run(["git", "-C", gpg_home / "proj" / "r", "cat-file", "commit", "HEAD"], env={"HOME": str(gpg_home)})
        assert b"-----BEGIN PGP SIGNATURE-----" in shown.stdout, shown
    finally:
        term.close()
    # The outside agent signed: gpg inside did not start one of its own.
    assert _agent_pid(who, gpg_home) == agent
    # gpg cleaned up its locks.
    assert not [p.name for p in (gpg_home / ".gnupg").iterdir() if p.name.endswith(".lock") or p.name.startswith(".#lk")]


# Each: a step that would plant code or a foreign object in ~/.gnupg, and the
# name that must not appear (or stay as it was) afterwards.
ATTACKS = (
    ("echo 'pinentry-program ~/proj/evil' > ~/.gnupg/gpg-agent.conf", "gpg-agent.conf"),
    ("ln -s ~/proj/evil ~/.gnupg/pubring.kbx.lock", "pubring.kbx.lock"),
    ("ln ~/proj/evil ~/.gnupg/pubring.kbx.lock", "pubring.kbx.lock"),
    ("ln ~/proj/evil ~/.gnupg/.#lk0xab.host.1", ".#lk0xab.host.1"),
    ("ln -s ~/proj/evil ~/.gnupg/.#lk0xab.host.2", ".#lk0xab.host.2"),
    ("mkdir ~/.gnupg/.#lk0xab.host.3", ".#lk0xab.host.3"),
    ("mkfifo ~/.gnupg/pubring.kbx.lock", "pubring.kbx.lock"),
    # gpg's own temporary file, renamed or linked onto a conf file
    ("echo 'exec-path ~/proj' > ~/.gnupg/.#lk0xab.host.4 && mv ~/.gnupg/.#lk0xab.host.4 ~/.gnupg/gpg.conf", "gpg.conf"),
    ("echo 'exec-path ~/proj' > ~/.gnupg/.#lk0xab.host.5 && ln ~/.gnupg/.#lk0xab.host.5 ~/.gnupg/gpg.conf", "gpg.conf"),
    ("echo 'exec-path ~/proj' > ~/.gnupg/.#lk0xab.host.6 && ln ~/.gnupg/.#lk0xab.host.6 ~/.gnupg/common.conf", "common.conf"),
    # the trust database replaced by a foreign file
    ("mv ~/proj/evil ~/.gnupg/trustdb.gpg", "trustdb.gpg"),
    ("ln -sf ~/proj/evil ~/.gnupg/trustdb.gpg", "trustdb.gpg"),
    ("ln -s ~/proj/evil ~/.gnupg/random_seed", "random_seed"),
)


def _planted(gnupg, name: str, before: dict) -> bool:
    """Something other than what was there before is at the name (removing
    a state file is allowed: gpg makes a new one)."""
    path = gnupg / name
    if not os.path.lexists(path):
        return False
    info = os.lstat(path)
    return name not in before or (info.st_ino, info.st_mode) != before[name]


def test_gnupg_names_cannot_become_code(who, gpg_home):
    gnupg = gpg_home / ".gnupg"
    before = {p.name: (os.lstat(p).st_ino, os.lstat(p).st_mode) for p in gnupg.iterdir()}
    term = Term(who, gpg_home, "bash").start()
    try:
        supervised(term)
        term.run("cd ~/proj && printf '#!/bin/sh\\ntouch ~/pwned\\n' > evil && chmod +x evil")
        for line, name in ATTACKS:
            text = term.run(line)
            assert not _planted(gnupg, name, before), (line, text)
        # each refusal logged (the terminal notices of one name are merged)
        log = (gpg_home / ".local" / "state" / "peninsula" / "denials.jsonl").read_text()
        assert len(log.splitlines()) >= len(ATTACKS), log
        assert DENIED in term.screen()
        # gpg's own temporary names are only ever regular files made by an open
        for left in gnupg.iterdir():
            if left.name.startswith(".#lk"):
                assert os.path.isfile(left) and not os.path.islink(left) and os.lstat(left).st_nlink == 1, left
        # Positive control: unconfined, the same steps work.
        term.run("cd ~")
        term.prompt()
        for line, name in ATTACKS:
            if name not in before:
                term.run(f"rm -rf ~/.gnupg/{name}")
            term.run(line)
            assert _planted(gnupg, name, before), line
    finally:
        term.close()
