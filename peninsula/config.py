"""Sandbox options from TOML files.

A config file holds the same options as the `peninsula run` flags:

    write = ["~/.cache/pip"]        # extra writable roots
    protect = ["~/.ssh"]            # denied even inside a writable root
    read_only = false               # only the temp dirs are writable
    hardlinked_writes = false       # see policy.Policy
    log = "~/.local/state/peninsula/denials.jsonl"

Unknown keys and wrong types are errors that name the file and line.
Relative paths are taken relative to the directory holding the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace


class ConfigError(Exception):
    """A config problem, already phrased for the user as 'file:line: what'."""


@dataclass(frozen=True)
class Options:
    write: tuple[str, ...] = ()
    protect: tuple[str, ...] = ()
    read_only: bool = False
    hardlinked_writes: bool = False
    log: str | None = None
    sources: tuple[str, ...] = field(default=(), compare=False)

    def merged(self, other: "Options") -> "Options":
        """Later options add to lists and override scalars that they set."""
        return replace(
            self,
            write=self.write + other.write,
            protect=self.protect + other.protect,
            read_only=self.read_only or other.read_only,
            hardlinked_writes=other.hardlinked_writes or self.hardlinked_writes,
            log=other.log or self.log,
            sources=self.sources + other.sources,
        )


_LISTS = ("write", "protect")
_BOOLS = ("read_only", "hardlinked_writes")
_STRINGS = ("log",)
KEYS = _LISTS + _BOOLS + _STRINGS


def expand_path(raw: str, base_dir: str) -> str:
    """~ and $VAR expansion, then absolute relative to base_dir. Globs are kept."""
    negate = raw.startswith("!")
    text = raw[1:] if negate else raw
    text = os.path.expandvars(os.path.expanduser(text))
    if not os.path.isabs(text):
        text = os.path.join(base_dir, text)
    text = os.path.normpath(text)
    return ("!" if negate else "") + text


def _line_of(source: str, key: str) -> int:
    pattern = re.compile(rf"^\s*(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*=", re.M)
    match = pattern.search(source)
    if match is None:
        return 1
    return source.count("\n", 0, match.start()) + 1


def parse_options(source: str, filename: str) -> Options:
    """Parse TOML text into Options, or raise ConfigError naming file:line."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        doc = tomlkit.parse(source)
    except ParseError as err:
        raise ConfigError(f"{filename}:{err.line}: {err}") from None
    base_dir = os.path.dirname(os.path.abspath(filename))
    values: dict[str, object] = {}
    for key, value in doc.unwrap().items():
        where = f"{filename}:{_line_of(source, key)}"
        if key not in KEYS:
            known = ", ".join(KEYS)
            raise ConfigError(f"{where}: unknown key '{key}' (known keys: {known})")
        if key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ConfigError(f"{where}: '{key}' must be a list of non-empty path strings")
            values[key] = tuple(expand_path(v, base_dir) for v in value)
        elif key in _BOOLS:
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: '{key}' must be true or false")
            values[key] = value
        else:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: '{key}' must be a non-empty string")
            values[key] = expand_path(value, base_dir)
    return Options(**values, sources=(filename,))


def load_options(filename: str) -> Options:
    try:
        with open(filename, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise ConfigError(f"{filename}: cannot read: {err.strerror}") from None
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ConfigError(f"{filename}:{line}: not valid UTF-8") from None
    return parse_options(source, filename)
