"""The user config: ~/.config/peninsula/config.toml (XDG_CONFIG_HOME).

    baseline = ["/srv/code"]          # more Landlock roots, beyond home and temp
    write = ["~/.cache/pip"]          # every confined process may write here
    protect = ["~/.aws"]              # never writable by confined processes
    allow_socket = ["/tmp/.X11-unix/X*"]  # unix sockets confined processes may reach (new sessions)
    allow_loopback = [8888]  # this host's TCP/UDP ports confined processes may reach (new sessions)
    hardlinked_writes = false
    best_effort = false               # run with weaker enforcement rather than refuse

    [projects]
    direnv = true                     # a directory whose .envrc direnv allowed
    markers = [".peninsula.toml", "devenv.nix"]
    roots = ["~/src/client-work"]     # these directories are projects too

Unknown keys and wrong types are errors naming file:line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from peninsula.config.options import ConfigError, _line_of, describe_parse_error, expand_path, read_config_text

DEFAULT_MARKERS = (".peninsula.toml", "devenv.nix")


@dataclass(frozen=True)
class UserConfig:
    baseline: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    protect: tuple[str, ...] = ()
    allow_socket: tuple[str, ...] = ()
    allow_loopback: tuple[int, ...] = ()
    hardlinked_writes: bool = False
    best_effort: bool = False
    direnv: bool = True
    markers: tuple[str, ...] = DEFAULT_MARKERS
    roots: tuple[str, ...] = ()
    source: str | None = field(default=None, compare=False)


def config_path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "peninsula", "config.toml")


_TOP = {"baseline": "paths", "write": "paths", "protect": "paths", "allow_socket": "paths", "allow_loopback": "ports", "hardlinked_writes": "bool", "best_effort": "bool", "projects": "table"}
_PROJECTS = {"direnv": "bool", "markers": "names", "roots": "paths"}


def _check(kind: str, value, where: str, key: str, base_dir: str):
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be true or false")
        return value
    if kind == "ports":
        from peninsula.config.options import parse_port

        try:
            if not isinstance(value, list):
                raise ValueError("not a list")
            return tuple(parse_port(v) for v in value)
        except ValueError as err:
            raise ConfigError(f"{where}: '{key}' must be a list of port numbers ({err})") from None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of non-empty strings")
    if kind == "names":
        for name in value:
            if "/" in name or name in (".", ".."):
                raise ConfigError(f"{where}: '{key}' holds file names, not paths: {name!r}")
        return tuple(value)
    return tuple(expand_path(v, base_dir) for v in value)


def parse_user_config(source: str, filename: str) -> UserConfig:
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        doc = tomlkit.parse(source).unwrap()
    except ParseError as err:
        raise ConfigError(describe_parse_error(source, filename, err)) from None
    base_dir = os.path.dirname(os.path.abspath(filename))
    values: dict = {}
    for key, value in doc.items():
        where = f"{filename}:{_line_of(source, key)}"
        kind = _TOP.get(key)
        if kind is None:
            raise ConfigError(f"{where}: unknown key '{key}' (known keys: {', '.join(_TOP)})")
        if kind == "table":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{key}' must be a table ([projects])")
            for sub, subvalue in value.items():
                subwhere = f"{filename}:{_line_of(source, sub)}"
                subkind = _PROJECTS.get(sub)
                if subkind is None:
                    raise ConfigError(f"{subwhere}: unknown key 'projects.{sub}' (known keys: {', '.join(_PROJECTS)})")
                values[sub] = _check(subkind, subvalue, subwhere, f"projects.{sub}", base_dir)
        else:
            values[key] = _check(kind, value, where, key, base_dir)
    return UserConfig(**values, source=filename)


def load_user_config(filename: str | None = None) -> UserConfig:
    """The user config, or the defaults when the file does not exist."""
    filename = filename or config_path()
    try:
        text = read_config_text(filename)
    except FileNotFoundError:
        return UserConfig()
    return parse_user_config(text, filename)
