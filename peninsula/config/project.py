"""What a project is, whether its config is trusted, and its policy.

Every fact here is read by the supervisor itself from the file system
(never taken from the shell's environment): direnv's allow records, the
markers, peninsula's trust records.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from peninsula.config import defaults, socketdirs
from peninsula.policy import engine as policy
from peninsula.config.options import ConfigError, Options, parse_options
from peninsula.config.user import UserConfig

PROJECT_CONFIGS = (".peninsula.toml", ".devenv/peninsula.toml")


@dataclass(frozen=True)
class Project:
    root: str
    reason: str  # how it was recognised, for `peninsula status`

    @property
    def name(self) -> str:
        return os.path.basename(self.root) or self.root


def data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(defaults.home(), ".local", "share")
    return base


def _content_hash(path: str, content: bytes) -> str:
    import hashlib  # here: loading OpenSSL costs every shell start ~3 ms, and most have no project config

    return hashlib.sha256(path.encode("utf-8", "surrogateescape") + b"\n" + content).hexdigest()


_allow_index: dict[str, tuple[object, frozenset[str]]] = {}


def _recorded_paths(directory: str) -> frozenset[str]:
    """The paths named inside every record of an allow/trust directory,
    re-read only when the directory changes."""
    try:
        info = os.stat(directory)
    except OSError:
        return frozenset()
    stamp = (info.st_mtime_ns, info.st_ino, info.st_nlink)
    cached = _allow_index.get(directory)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    paths = set()
    for name in os.listdir(directory):
        try:
            with open(os.path.join(directory, name), "rb") as handle:
                paths.add(handle.read(8192).decode("utf-8", "surrogateescape").strip())
        except OSError:
            continue
    result = frozenset(paths)
    _allow_index[directory] = (stamp, result)
    return result


def direnv_allowed(envrc: str) -> bool:
    """True when direnv allowed this .envrc at some time.

    Not only its current content: a confined process may edit or delete
    .envrc (that is allowed), and that must not make the project stop being
    one. direnv keeps a record per allowed content, naming the file. A deny
    record counts too: `direnv deny` inside the project (allowed, see
    direnvrecords.py) removes the allow record, and must not end the
    project either; before removing it the supervisor keeps a record of its
    own (kept_dir)."""
    base = os.path.join(data_dir(), "direnv")
    return any(envrc in _recorded_paths(d) for d in (os.path.join(base, "allow"), os.path.join(base, "deny"), kept_dir()))


def kept_dir() -> str:
    """peninsula's records of .envrc files whose allow record was removed
    from inside their project (direnvrecords.py): each stays a project."""
    return os.path.join(data_dir(), "peninsula", "direnv-projects")


def ever_trusted(config_path: str) -> bool:
    """True when some content of this project config was trusted once."""
    return config_path in _recorded_paths(trust_dir())


def find_project(cwd: str, conf: UserConfig, known: frozenset[str] | set[str] = frozenset()) -> Project | None:
    """The innermost project containing cwd (an absolute, real path).

    known: roots already seen as projects in this session; they stay
    projects whatever happens to their markers meanwhile."""
    roots = {os.path.realpath(r) for r in conf.roots}
    directory = cwd
    while True:
        if directory in roots:
            return Project(directory, "listed in the user config")
        if directory in known:
            return Project(directory, "recognised earlier in this session")
        for marker in conf.markers:
            path = os.path.join(directory, marker)
            if os.path.isfile(path) or ever_trusted(path):
                return Project(directory, f"holds {marker}")
        envrc = os.path.join(directory, ".envrc")
        if direnv_allowed(envrc):
            if conf.direnv:
                return Project(directory, "direnv allowed its .envrc")
            if _uses_peninsula(envrc):
                return Project(directory, "its .envrc says `use peninsula`")
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _uses_peninsula(envrc: str) -> bool:
    try:
        with open(envrc, encoding="utf-8", errors="replace") as handle:
            return any(line.split() == ["use", "peninsula"] for line in handle)
    except OSError:
        return False


# -- trust ----------------------------------------------------------------------


def trust_dir() -> str:
    return os.path.join(data_dir(), "peninsula", "trust")


def is_trusted(path: str, content: bytes) -> bool:
    return os.path.isfile(os.path.join(trust_dir(), _content_hash(path, content)))


def record_trust(path: str) -> str:
    """Trust the current content of a project config file; returns the record."""
    with open(path, "rb") as handle:
        content = handle.read()
    os.makedirs(trust_dir(), mode=0o700, exist_ok=True)
    record = os.path.join(trust_dir(), _content_hash(path, content))
    with open(record, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(path + "\n")
    return record


@dataclass(frozen=True)
class ProjectConfig:
    path: str
    options: Options
    trusted: bool


def project_configs(root: str) -> tuple[list[ProjectConfig], list[str]]:
    """The project's config files, and the errors met reading them."""
    found, errors = [], []
    for rel in PROJECT_CONFIGS:
        path = os.path.join(root, rel)
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except OSError:
            continue
        real = os.path.realpath(path)
        try:
            options = parse_options(content.decode("utf-8"), path)
        except UnicodeDecodeError:
            errors.append(f"{path}: not valid UTF-8")
            continue
        except ConfigError as err:
            last = _LAST_GOOD.get(real)
            if last is not None:  # fail closed: a typo must not drop its protections
                found.append(ProjectConfig(path, last, False))
                errors.append(f"{err} (keeping its last good protections, none of its allowances)")
            else:
                errors.append(str(err))
            continue
        _LAST_GOOD[real] = options
        found.append(ProjectConfig(path, options, is_trusted(real, content)))
    return found, errors


# The last config of each project file that parsed, for this process (the
# supervisor reads them again at every prompt).
_LAST_GOOD: dict[str, Options] = {}


def project_policy(project: Project, conf: UserConfig, extra_protected: tuple[str, ...] = ()) -> tuple[policy.Policy, list[str]]:
    """The policy for processes confined to project, and notices for the user.

    An untrusted project config contributes only what tightens: its
    protections apply, its allowances wait for `peninsula trust`.
    """
    root = project.root
    sockets = socketdirs.make_project_sockets(root)
    writable = [root, defaults.project_cache(root, create=True), *([sockets] if sockets else []), *conf.write,
                *defaults.temp_roots()]
    protected = [
        *defaults.protected_paths(),
        *defaults.state_exceptions(),
        *defaults.protected_in_runtime(),
        *defaults.protected_sockets(),
        *socketdirs.socket_protections(root),  # every project's socket dir but its own
        *conf.protect,
        os.path.join(root, ".git", "hooks", "*"),  # hooks run later, outside
        "!" + os.path.join(root, ".git", "hooks", "*.sample"),
        *extra_protected,
    ]
    hardlinked = conf.hardlinked_writes
    configs, notices = project_configs(root)
    for item in configs:
        protected.extend(item.options.protect)
        if item.trusted:
            writable.extend(item.options.write)
            hardlinked = hardlinked or item.options.hardlinked_writes
        elif item.options.write or item.options.hardlinked_writes:
            notices.append(
                f"{item.path} is not trusted: its allowances are ignored "
                f"(run `peninsula trust {root}` from outside the project to apply them)"
            )
    from peninsula.config.options import canonical

    pol = policy.Policy(
        writable=tuple(dict.fromkeys(canonical(p) for p in writable)),
        protected=tuple(canonical(p) for p in protected),
        hardlinked_writes=hardlinked,
        state=defaults.state_allowances(),
        own_envrc=os.path.join(root, ".envrc"),
    )
    return pol, notices


def strict_policy(conf: UserConfig, extra_protected: tuple[str, ...] = ()) -> policy.Policy:
    """Only the temp dirs, with every protection a project has: between
    projects, and for an orphan whose line was never seen (a daemon's is
    judged at its parent's exit, so one is an orphan only when its parent
    died by a signal)."""
    from peninsula.config.options import canonical

    sockets = defaults.protected_sockets() + socketdirs.socket_protections(None)
    protected = [*defaults.protected_paths(), *defaults.state_exceptions(), *defaults.protected_in_runtime(),
                 *sockets, *conf.protect, *extra_protected]
    return policy.Policy(
        writable=tuple(canonical(p) for p in defaults.temp_roots()),
        protected=tuple(canonical(p) for p in protected),
        state=defaults.state_allowances(),
    )
