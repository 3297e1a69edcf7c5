"""Sandbox options from TOML files (config files and named profiles).

A config file holds the same options as the `peninsula run` flags:

    description = "what this file is for"   # shown by `peninsula profiles`
    include = ["npm", "./more.toml"]        # profiles by name, or files
    write = ["~/.cache/pip"]                # extra writable roots
    protect = ["~/.ssh"]                    # denied even inside a writable root
    read_only = false                       # only the temp dirs are writable
    hardlinked_writes = false               # see policy.Policy
    log = "~/.local/state/peninsula/denials.jsonl"
    log_max_size = "8M"                     # the log and its rotated part, together
    allow_connect = [443]                   # TCP ports (Landlock ABI 4)
    allow_bind = [8080]
    allow_socket = ["/tmp/.X11-unix/X*"]    # unix sockets a confined process may reach
    allow_loopback = [8888]                 # this host's TCP/UDP ports whose listener is outside
    unshare_net = true                      # also unshare_pid, unshare_ipc, unshare_uts
    hostname = "sandbox"                    # needs unshare_uts
    limit_as = "2G"                         # also limit_fsize (sizes), limit_cpu,
    limit_walltime = 600                    # limit_nofile, limit_nproc (counts)
    clear_env = true
    keep_env = ["PATH", "LC_*"]
    setenv = { CI = "1" }
    workdir = "src"

Unknown keys, wrong types and include cycles are errors that name the file
and line. Relative paths are taken relative to the directory holding the
file. An include names a profile (no "/" and no ".toml": looked up in
~/.config/peninsula/profiles, then among the shipped ones) or a file
(relative to the including file). Included files are applied first, so the
including file's own settings win.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field, fields, replace

PROFILE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")


class ConfigError(Exception):
    """A config problem, already phrased for the user as 'file:line: what'."""


@dataclass(frozen=True)
class Options:
    write: tuple[str, ...] = ()
    protect: tuple[str, ...] = ()
    read_only: bool = False
    hardlinked_writes: bool = False
    log: str | None = None
    log_max_size: int | None = None  # None: denial_log.LOG_CAP_BYTES
    # network (Landlock ABI 4): TCP ports; empty for both = network untouched
    allow_connect: tuple[int, ...] = ()
    allow_bind: tuple[int, ...] = ()
    # unix sockets whose listener outside may act for a confined process
    allow_socket: tuple[str, ...] = ()
    # this host's TCP/UDP ports whose listener outside may act for it
    allow_loopback: tuple[int, ...] = ()
    # namespaces
    unshare_net: bool = False
    unshare_pid: bool = False
    unshare_ipc: bool = False
    unshare_uts: bool = False
    hostname: str | None = None
    # resource limits (None: not set)
    limit_as: int | None = None
    limit_cpu: int | None = None
    limit_fsize: int | None = None
    limit_nofile: int | None = None
    limit_nproc: int | None = None
    limit_walltime: float | None = None
    # environment
    clear_env: bool = False
    keep_env: tuple[str, ...] = ()
    setenv: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    # run even when the kernel lacks Landlock or its scoping, saying what is lost
    best_effort: bool = False
    # leave exclusive creates and name changes to Landlock (no notice for those)
    fast: bool = False
    description: str | None = field(default=None, compare=False)
    sources: tuple[str, ...] = field(default=(), compare=False)

    def merged(self, other: "Options") -> "Options":
        """Later options add to lists, switch booleans on, and override
        the scalars that they set. The description stays the first one's."""
        changes = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "description":
                changes[f.name] = mine if mine is not None else theirs
            elif isinstance(f.default, tuple):
                changes[f.name] = mine + theirs
            elif isinstance(f.default, bool):
                changes[f.name] = mine or theirs
            else:
                changes[f.name] = theirs if theirs is not None else mine
        return replace(self, **changes)


_PATH_LISTS = ("write", "protect", "allow_socket")
_PORT_LISTS = ("allow_connect", "allow_bind", "allow_loopback")
_BOOLS = ("read_only", "hardlinked_writes", "unshare_net", "unshare_pid", "unshare_ipc", "unshare_uts", "clear_env",
          "best_effort", "fast")
_PATHS = ("log", "workdir")
_SIZES = ("limit_as", "limit_fsize", "log_max_size")
_COUNTS = ("limit_cpu", "limit_nofile", "limit_nproc")
KEYS = (
    ("description", "include") + _PATH_LISTS + _PORT_LISTS + _BOOLS + _PATHS
    + ("hostname",) + _SIZES + _COUNTS + ("limit_walltime", "keep_env", "setenv")
)

_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$")


def parse_size(text) -> int:
    """512, 512K, 512M, 2G, 1T (binary multiples; a trailing B or iB is
    accepted) -> bytes. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError("not a size")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a size cannot be negative")
        return text
    match = re.fullmatch(r"\s*(\d+)\s*([KMGTkmgt]?)(?:i?[Bb])?\s*", str(text))
    if match is None:
        raise ValueError(f"not a size: {text!r} (use e.g. 4096, 512K, 512M, 2G)")
    return int(match.group(1)) * _SUFFIX[match.group(2).upper()]


def parse_count(text) -> int:
    if isinstance(text, bool):
        raise ValueError("not a number")
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise ValueError("cannot be negative")
    return value


def parse_seconds(text) -> float:
    if isinstance(text, bool):
        raise ValueError("not a number")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def parse_port(value) -> int:
    if isinstance(value, bool):
        raise ValueError("not a port")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range (0-65535): {port}")
    return port


def parse_env_assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not _ENV_NAME.match(name):
        raise ValueError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def check_env_pattern(name: str) -> str:
    if not name or not re.fullmatch(r"[A-Za-z0-9_*?\[\]!]+", name):
        raise ValueError(f"not an environment variable name or pattern: {name!r}")
    return name


def check_hostname(name: str) -> str:
    if not _HOSTNAME.match(name):
        raise ValueError(f"not a valid host name: {name!r} (letters, digits, '-' and '.', at most 64)")
    return name


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
    pattern = re.compile(rf"^[ \t]*(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*=", re.M)
    match = pattern.search(source)
    if match is None:
        return 1
    return source.count("\n", 0, match.start()) + 1


_KEY_LINE = re.compile(r"^[ \t]*[A-Za-z0-9_.\"'-]+[ \t]*=|^[ \t]*\[", re.M)


def _unclosed_bracket(source: str) -> tuple[int, int | None, str] | None:
    """The first '[' that TOML needs closed and is not: (its line, the line
    where a new key shows it was left open or None at the end, the text on
    its line). Strings and comments are skipped."""
    stack: list[int] = []  # lines of the open brackets
    line, i, n = 1, 0, len(source)
    at_line_start = True
    while i < n:
        c = source[i]
        if c == "\n":
            line += 1
            i += 1
            at_line_start = True
            if stack and _KEY_LINE.match(source, i):
                return stack[0], line, source.splitlines()[stack[0] - 1].strip()
            continue
        if c in " \t":
            i += 1
            continue
        if c == "#":
            end = source.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "\"'":
            quote = source[i:i + 3] if source[i:i + 3] in ('"""', "\'\'\'") else c
            j = i + len(quote)
            while j < n and not source.startswith(quote, j):
                if c == '"' and source[j] == "\\":
                    j += 1
                if source[j] == "\n" and len(quote) == 1:
                    break  # an unterminated one-line string: not our diagnosis
                j += 1
            line += source.count("\n", i, j)
            i = j + len(quote)
            at_line_start = False
            continue
        if c == "[":
            if at_line_start and not stack:
                # A table header: it must close on this line.
                end = source.find("\n", i)
                text = source[i:] if end < 0 else source[i:end]
                if "]" not in text.split("#", 1)[0]:
                    return line, line, text.strip()
                i += len(text)
                continue
            stack.append(line)
        elif c == "]" and stack:
            stack.pop()
        at_line_start = False
        i += 1
    if stack:
        return stack[0], None, source.splitlines()[stack[0] - 1].strip()
    return None


def describe_parse_error(source: str, filename: str, err) -> str:
    """'file:line: what' for a TOML syntax error. tomlkit reports where it
    gave up, which for a missing ']' is the next line or, at the end of the
    file, line 1 col 0 with a NUL: find the bracket left open instead."""
    unclosed = _unclosed_bracket(source)
    if unclosed is not None:
        opened, shown, text = unclosed
        if shown == opened:
            return f"{filename}:{opened}: missing ']' at the end of the table header `{text}`"
        where = f"before line {shown}" if shown else "by the end of the file"
        return f"{filename}:{opened}: missing ']': the '[' in `{text}` is not closed {where}"
    message = str(err)
    line = err.line
    if "'\\x00'" in message:  # tomlkit's marker for the end of the input
        line = source.count("\n") + (0 if source.endswith("\n") else 1) or 1
        message = "unexpected end of file"
    else:
        message = re.sub(r" at line \d+ col \d+$", f" (column {err.col + 1})", message)
        message = message.replace("'\\n'", "end of line")
    return f"{filename}:{line}: {message}"


def profile_dirs() -> tuple[str, ...]:
    """Where named profiles are looked up, first match wins."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return (os.path.join(base, "peninsula", "profiles"), PROFILE_DIR)


def find_profile(name: str) -> str | None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name.endswith(".toml"):
        return None
    for directory in profile_dirs():
        path = os.path.join(directory, name + ".toml")
        if os.path.isfile(path):
            return path
    return None


def list_profiles() -> list[tuple[str, str, str | None]]:
    """(name, path, description) of every profile, user ones shadowing shipped ones."""
    seen: dict[str, str] = {}
    for directory in profile_dirs():
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for entry in names:
            if entry.endswith(".toml") and entry[:-5] not in seen:
                seen[entry[:-5]] = os.path.join(directory, entry)
    out = []
    for name in sorted(seen):
        try:
            description = load_options(seen[name], _describe_only=True).description
        except ConfigError as err:
            description = f"(broken: {err})"
        out.append((name, seen[name], description))
    return out


def _include_target(raw: str, base_dir: str, where: str) -> str:
    if "/" in raw or raw.endswith(".toml"):
        path = expand_path(raw, base_dir)
        if not os.path.isfile(path):
            raise ConfigError(f"{where}: cannot include {raw}: no such file ({path})")
        return path
    path = find_profile(raw)
    if path is None:
        known = ", ".join(name for name, _, _ in list_profiles()) or "none"
        raise ConfigError(f"{where}: no profile named '{raw}' (known profiles: {known})")
    return path


def parse_options(source: str, filename: str, _stack: tuple[str, ...] = (), _describe_only: bool = False) -> Options:
    """Parse TOML text into Options, or raise ConfigError naming file:line."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        doc = tomlkit.parse(source)
    except ParseError as err:
        raise ConfigError(describe_parse_error(source, filename, err)) from None
    base_dir = os.path.dirname(os.path.abspath(filename))
    values: dict[str, object] = {}
    included = Options()
    for key, value in doc.unwrap().items():
        where = f"{filename}:{_line_of(source, key)}"
        if key not in KEYS:
            known = ", ".join(KEYS)
            raise ConfigError(f"{where}: unknown key '{key}' (known keys: {known})")
        try:
            if key == "description":
                if not isinstance(value, str):
                    raise ValueError("'description' must be a string")
                values[key] = value
            elif _describe_only:
                continue
            elif key == "include":
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise ValueError("'include' must be a list of profile names or file paths")
                for raw in value:
                    target = _include_target(raw, base_dir, where)
                    real = os.path.realpath(target)
                    if real in _stack:
                        chain = " -> ".join(os.path.basename(p) for p in _stack[_stack.index(real):] + (real,))
                        raise ConfigError(f"{where}: include cycle: {chain}")
                    included = included.merged(load_options(target, _stack=_stack))
            elif key in _PATH_LISTS:
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise ValueError(f"'{key}' must be a list of non-empty path strings")
                values[key] = tuple(expand_path(v, base_dir) for v in value)
            elif key in _PORT_LISTS:
                if not isinstance(value, list):
                    raise ValueError(f"'{key}' must be a list of TCP port numbers")
                values[key] = tuple(parse_port(v) for v in value)
            elif key in _BOOLS:
                if not isinstance(value, bool):
                    raise ValueError(f"'{key}' must be true or false")
                values[key] = value
            elif key in _PATHS:
                if not isinstance(value, str) or not value:
                    raise ValueError(f"'{key}' must be a non-empty string")
                values[key] = expand_path(value, base_dir)
            elif key == "hostname":
                if not isinstance(value, str):
                    raise ValueError("'hostname' must be a string")
                values[key] = check_hostname(value)
            elif key in _SIZES:
                if not isinstance(value, (int, str)):
                    raise ValueError(f"'{key}' must be a size like 512M")
                values[key] = parse_size(value)
            elif key in _COUNTS:
                values[key] = parse_count(value)
            elif key == "limit_walltime":
                if not isinstance(value, (int, float)):
                    raise ValueError("'limit_walltime' must be a number of seconds")
                values[key] = parse_seconds(value)
            elif key == "keep_env":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("'keep_env' must be a list of variable names")
                values[key] = tuple(check_env_pattern(v) for v in value)
            elif key == "setenv":
                if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                    raise ValueError("'setenv' must be a table of NAME = \"value\" strings")
                for name in value:
                    if not _ENV_NAME.match(name):
                        raise ValueError(f"not an environment variable name: {name!r}")
                values[key] = tuple(value.items())
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
    own = Options(**values, sources=(filename,))
    return replace(included.merged(own), description=own.description)


def read_config_text(filename: str) -> str:
    """A config file's text; FileNotFoundError passes through, other
    problems become a ConfigError naming file (and line, for bad UTF-8)."""
    try:
        with open(filename, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ConfigError(f"{filename}: cannot read: {err.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ConfigError(f"{filename}:{line}: not valid UTF-8") from None


def load_options(filename: str, _stack: tuple[str, ...] = (), _describe_only: bool = False) -> Options:
    try:
        source = read_config_text(filename)
    except FileNotFoundError:
        raise ConfigError(f"{filename}: cannot read: No such file or directory") from None
    stack = _stack + (os.path.realpath(filename),)
    return parse_options(source, filename, stack, _describe_only)


def load_profile(name: str) -> Options:
    """A named profile (see profile_dirs), or a path to a TOML file."""
    if "/" in name or name.endswith(".toml"):
        return load_options(name)
    path = find_profile(name)
    if path is None:
        known = ", ".join(n for n, _, _ in list_profiles()) or "none"
        raise ConfigError(f"no profile named '{name}' (known profiles: {known})")
    return load_options(path)


def canonical(path: str) -> str:
    """realpath for plain paths; for a glob, realpath of its literal prefix."""
    negate = path.startswith("!")
    text = path[1:] if negate else path
    if glob.has_magic(text):
        head, tail = text, ""
        while glob.has_magic(head):
            head, part = os.path.split(head)
            tail = os.path.join(part, tail) if tail else part
        text = os.path.join(os.path.realpath(head), tail)
    else:
        text = os.path.realpath(text)
    return ("!" if negate else "") + text
