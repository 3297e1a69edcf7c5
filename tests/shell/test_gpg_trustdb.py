"""gpg's trust database stays protected inside a project: its ownertrust
decides whose signatures gpg and git call good, and a confined process must
not raise the trust of a key already in the keyring (the reviewer's attack:
`echo FPR:6: | gpg --import-ownertrust` turned git's %G? from U to G)."""

from __future__ import annotations

import os
import re

from .conftest import Term, supervised
from .test_gpg_in_project import DENIED, gpg_home  # noqa: F401 (a fixture)


def _validity(who, env) -> str:
    listed = who.run(["gpg", "--list-keys", "--with-colons", "m@example.org"], env=env).stdout.decode()
    return re.search(r"^uid:([^:]*):", listed, re.M).group(1)


def test_ownertrust_cannot_be_raised_from_a_project(who, gpg_home):
    env = {"HOME": str(gpg_home)}
    # Mallory's key, made elsewhere and imported by the user once; a commit she signed.
    other = who.mkdir(who.base / "mallory")
    os.chmod(other, 0o700)
    menv = {"HOME": str(gpg_home), "GNUPGHOME": str(other), "GIT_AUTHOR_NAME": "m", "GIT_AUTHOR_EMAIL": "m@example.org",
            "GIT_COMMITTER_NAME": "m", "GIT_COMMITTER_EMAIL": "m@example.org"}
    assert who.run(["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", "Mallory <m@example.org>",
                    "ed25519", "sign", "never"], env=menv).returncode == 0
    public = who.run(["gpg", "--export", "m@example.org"], env=menv).stdout
    assert who.run(["gpg", "--batch", "--import"], env=env, input=public).returncode == 0
    listed = who.run(["gpg", "--list-keys", "--with-colons", "m@example.org"], env=env).stdout.decode()
    fingerprint = re.search(r"^fpr:+([0-9A-F]+):", listed, re.M).group(1)
    repo = gpg_home / "proj" / "mr"
    assert who.run(["git", "init", "-q", repo], env=menv).returncode == 0
    signed = who.run(["git", "-C", repo, "-c", "user.signingkey=m@example.org", "commit", "-q", "--allow-empty", "-S",
                      "-m", "by mallory"], env=menv)
    assert signed.returncode == 0, signed.stderr

    def git_says() -> str:
        return who.run(["git", "-C", repo, "log", "-1", "--format=%G?"], env=env).stdout.decode().strip()

    before = _validity(who, env)
    assert before not in ("u", "f") and git_says() == "U", (before, git_says())
    attack = f"echo {fingerprint}:6: | gpg --import-ownertrust"
    term = Term(who, gpg_home, "bash").start()
    try:
        supervised(term)
        term.run("cd ~/proj")
        term.prompt()
        text = term.run(f"echo mark-t; {attack}; echo rc=$?", timeout=60)
    finally:
        term.close()
    after = text.split("mark-t\n", 1)[1]
    assert "rc=2" in after and f"{DENIED} open of {gpg_home / '.gnupg' / 'trustdb.gpg'}" in after, text
    assert _validity(who, env) == before and git_says() == "U"
    # Positive control: unconfined, the same step makes her key ultimately valid.
    unconfined = who.run(["sh", "-c", attack], env=env)
    assert unconfined.returncode == 0, unconfined.stderr
    assert _validity(who, env) == "u" and git_says() == "G"
