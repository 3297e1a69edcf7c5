"""`direnv allow` and `direnv deny` inside a project (issue 13, item 6).

Typed at the prompt of a supervised bash inside the project, as the plain
user: the project's own .envrc can be allowed and denied (its records are
the only ones written); a record for any other directory, a subdirectory
of the project included, stays refused. The positive control: the same
`direnv allow` of the other directory works outside the project.
"""

from __future__ import annotations

import hashlib
import re

from .conftest import supervised


def allow_record(home, envrc) -> object:
    path = str(envrc).encode()
    return home / ".local/share/direnv/allow" / hashlib.sha256(path + b"\n" + envrc.read_bytes()).hexdigest()


def deny_record(home, envrc) -> object:
    return home / ".local/share/direnv/deny" / hashlib.sha256(str(envrc).encode() + b"\n").hexdigest()


def test_direnv_allow_and_deny_of_the_projects_own_envrc(term_factory, home, user):
    project, other = home / "proj", home / "out"
    sub = user.mkdir(project / "sub")
    for directory in (other, sub):
        user.write(directory / ".envrc", "export OTHER_LOADED=1\n")
    term = term_factory("bash")
    supervised(term)
    term.run(f"cd {project}")
    assert "PROJ=1" in term.run('echo "PROJ=$PROJ_LOADED"')

    # Edited inside: blocked until allowed, then allowed from inside.
    # (direnv sees a change by the .envrc's mtime in whole seconds.)
    term.run("sleep 1.1; echo 'export PROJ_LOADED=2' > .envrc")
    text = term.run("direnv allow; echo allow-rc=$?")
    assert "allow-rc=0" in text, text
    assert allow_record(home, project / ".envrc").is_file()
    assert "PROJ=2" in term.run('echo "PROJ=$PROJ_LOADED"')
    first = home / ".local/share/direnv/allow" / hashlib.sha256(f"{project}/.envrc\n".encode() + b"export PROJ_LOADED=1\n").hexdigest()
    first.unlink()  # the fixture's record: now the one of the new content is the project's only one

    # Denied from inside: the allow record goes (direnv 2.33 and later also
    # write a deny record); the directory stays a project for peninsula.
    text = term.run("direnv deny; echo deny-rc=$?")
    assert "deny-rc=0" in text, text
    assert not allow_record(home, project / ".envrc").exists()
    kept = home / ".local/share/peninsula/direnv-projects" / deny_record(home, project / ".envrc").name
    assert kept.read_text() == f"{project}/.envrc\n"
    # ... in a new session too: the deny did not free the project.
    fresh = term_factory("bash")
    supervised(fresh)
    fresh.run(f"cd {project}")
    text = fresh.run(f"echo x > {other}/escaped; echo write-rc=$?")
    assert re.search(r"write-rc=[1-9]", text) and not (other / "escaped").exists(), text
    fresh.close()
    # (Control: without that record the directory is no project any more.)
    aside = kept.parent.parent / "kept-aside"
    kept.rename(aside)
    control = term_factory("bash")
    supervised(control)
    control.run(f"cd {project}")
    assert "write-rc=0" in control.run(f"echo x > {other}/escaped; echo write-rc=$?")
    control.close()
    aside.rename(kept)
    text = term.run("direnv allow; echo again-rc=$?")
    assert "again-rc=0" in text and not deny_record(home, project / ".envrc").exists()
    assert "peninsula: denied" not in term.screen(), term.screen()

    # Another directory's .envrc, and a subdirectory's: refused.
    text = term.run(f"direnv allow {other}; echo other-rc=$?")
    assert re.search(r"other-rc=[1-9]", text) and "peninsula: denied" in text, text
    text = term.run(f"direnv allow {sub}; echo sub-rc=$?")
    assert re.search(r"sub-rc=[1-9]", text), text
    text = term.run(f"direnv deny {other}; echo odeny-rc=$?")
    assert re.search(r"odeny-rc=[1-9]", text), text
    assert not allow_record(home, other / ".envrc").exists()
    assert not allow_record(home, sub / ".envrc").exists()
    assert not deny_record(home, other / ".envrc").exists()

    # Positive control: outside the project the same command works.
    term.run(f"cd {home}")
    text = term.run(f"direnv allow {other}; echo outside-rc=$?")
    assert "outside-rc=0" in text, text
    assert allow_record(home, other / ".envrc").is_file()
