"""direnv's allow and deny records for the project's own .envrc.

`direnv allow` and `direnv deny` typed inside a project write one record
each in direnv's data dir, which is protected (an allow record makes direnv
run a .envrc in the user's shell). A confined process may write exactly the
records of its own project's .envrc, computed here by the supervisor the
way direnv names them, and nothing else:

- allow/<sha256(path + "\\n" + content)>: the .envrc's current content;
- deny/<sha256(path + "\\n")> (direnv 2.33 and later write one);
- the three directories direnv makes when they are missing.

path is the project root's real path + "/.envrc", as direnv names it when
the project is entered by that path. Each side removes the other's record
(allow removes the deny record, deny the allow record of the current
content; before 2.33 deny only removes it): those removals are allowed
too. Removing the allow record must not end the project (peninsula knows
a direnv project by its records): the supervisor first keeps a record of
its own that the .envrc was allowed (project.kept_dir). Nothing here follows a name the
target gave: the names are made from the policy's project and the
supervisor's own environment, and compared with where the kernel would
really write.
"""

from __future__ import annotations

import os
import stat

from peninsula.config import defaults

ENVRC_LIMIT = 1 << 20  # direnv hashes the whole file; a bigger one gets no record here


def _direnv_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(defaults.home(), ".local", "share")
    return os.path.join(os.path.realpath(base), "direnv")


def _content(envrc: str) -> bytes | None:
    """The .envrc's content, read as the target (a regular file only)."""
    try:
        fd = os.open(envrc, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > ENVRC_LIMIT:
            return None
        data = b""
        while len(data) <= ENVRC_LIMIT:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk
        return None
    finally:
        os.close(fd)


def permits(envrc: str, where: str, op: str) -> bool:
    """May a process confined to the project of envrc do op at where?"""
    base = _direnv_dir()
    if op == "mkdir":
        return where in (base, os.path.join(base, "allow"), os.path.join(base, "deny"))
    if op not in ("open", "unlink"):
        return False
    import hashlib  # here, not at every start: hashlib loads OpenSSL (~3 ms)

    named = os.fsencode(envrc) + b"\n"
    if where == os.path.join(base, "deny", hashlib.sha256(named).hexdigest()):
        return True
    if not where.startswith(os.path.join(base, "allow") + "/"):
        return False
    content = _content(envrc)
    if content is None or where != os.path.join(base, "allow", hashlib.sha256(named + content).hexdigest()):
        return False
    return op == "open" or _keep_project(named)


def _keep_project(named: bytes) -> bool:
    """Record that the .envrc's directory is a direnv project before its
    allow record goes; False (the removal is refused) when that fails."""
    import hashlib

    from peninsula.config.project import kept_dir

    directory = kept_dir()
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        record = os.path.join(directory, hashlib.sha256(named).hexdigest())
        fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, named)
        finally:
            os.close(fd)
    except OSError:
        return False
    return True
