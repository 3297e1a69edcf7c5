"""Shipped defaults: what a confined process may write, and what never.

Each protected entry is a way to run code later, outside the sandbox.
"""

from __future__ import annotations

import glob
import os
import sys

from peninsula.policy import engine as policy

# Temporary places every confined process may write: they hold nothing that
# runs later on its own.
TEMP_ROOTS = ("/tmp", "/var/tmp", "/dev/shm")

# Home-relative paths that stay read-only even inside a writable root.
PROTECTED_IN_HOME = (
    # shell start-up files: run by every new shell
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile",
    ".zshrc", ".zshenv", ".zprofile", ".zlogin", ".zlogout", ".config/fish",
    ".inputrc", ".pam_environment", ".xprofile", ".xsessionrc", ".xinitrc",
    # credentials and keys
    ".ssh", ".gnupg", ".netrc", ".git-credentials",
    # things started by the desktop or systemd
    ".config/autostart", ".config/systemd", ".local/share/systemd",
    # git's global config and hooks run in every repository
    ".gitconfig", ".config/git",
    # peninsula's and direnv's own state: the sandbox's judges
    ".config/peninsula", ".local/state/peninsula", ".local/share/peninsula",
    ".cache/peninsula",  # peninsula's caches (never its seccomp program: filtercache)
    ".config/direnv", ".local/share/direnv",
    # toolchains and user binaries: run later, outside the sandbox
    ".local/bin", ".rustup", ".cargo/bin", ".nvm", ".pyenv", ".sdkman", ".volta",
    # sourced or loaded as code by tools the user runs later: Debian's
    # .bashrc sources .bash_aliases, direnv sources ~/.direnvrc for every
    # .envrc, the user site's .pth files run at every Python start, editors
    # run their init files, npm reads scripts and registries from .npmrc
    ".bash_aliases", ".direnvrc", ".local/lib", ".vimrc", ".vim", ".config/nvim", ".npmrc",
    ".emacs", ".emacs.d", ".config/emacs",
)


# Home-relative state files that confined processes may write: each is
# written on every run of a common tool. They are content-only allowances
# (policy.StateAllowance): no symlink, hard link, directory or FIFO can be
# put at these names, so the unconfined tool that writes them later writes
# only them. Each entry: (path, temporary names the tool writes and renames
# onto it, lock names, whether it is a directory of state files, why nothing
# runs or trusts what is written there). The temporary names are the ones
# the real tools use (seen with strace): readline's history_do_write writes
# NAME-PID.tmp, vim .viminfo.tmp (then .viminfz.tmp, .viminfy.tmp... when
# taken), less .lesshsQ, zsh NAME.new plus a NAME.LOCK symlink, fish a
# mkstemp name, neovim main.shada.tmp.a to .tmp.z.
_HISTORY = "a list of past commands: shown and recalled, never run unless the user picks an entry"
STATE_IN_HOME = (
    # shell history, written by the shell itself (at exit inside a project
    # too): losing it is data loss
    (".bash_history", (".bash_history-[0-9]*.tmp",), (), False, _HISTORY),
    (".zsh_history", (".zsh_history.new",), (".zsh_history.LOCK",), False, _HISTORY),
    (".histfile", (".histfile.new",), (".histfile.LOCK",), False, _HISTORY),
    (".local/share/fish/fish_history", ("fish_history.??????",), (), False, _HISTORY),
    # REPL and pager histories
    (".python_history", (".python_history-[0-9]*.tmp",), (), False, _HISTORY),
    (".node_repl_history", (), (), False, _HISTORY),
    (".lesshst", (".lesshsQ",), (), False, "less's search and command history: recalled, never run by less on its own"),
    (".sqlite_history", (".sqlite_history-[0-9]*.tmp",), (), False, _HISTORY),
    (".psql_history", (".psql_history-[0-9]*.tmp",), (), False, _HISTORY),
    (".mysql_history", (".mysql_history-[0-9]*.tmp",), (), False, _HISTORY),
    (".irb_history", (), (), False, _HISTORY),
    # editor state. Not ~/.local/state/nvim as a whole: Neovim keeps its exrc
    # trust database there (trust), and lazy.nvim its pkg-cache.lua, which it
    # runs at every start.
    (".viminfo", (".viminf?.tmp",), (), False,
     "marks, registers and histories: read as data; a register runs only when the user replays it (@x)"),
    (".local/state/nvim/shada/main.shada", ("main.shada.tmp.[a-z]",), (), False,
     "marks, registers and histories: read as data; a register runs only when the user replays it (@x)"),
    (".local/state/nvim/swap", (), (), True, "swap files: offered for recovery as text, never run"),
    (".local/state/nvim/undo", (), (), True, "undo files: restored as buffer text, never run"),
    (".local/state/nvim/log", (), (), False, "a log: only written"),
    # prompt tools run at every prompt, inside projects too
    (".cache/starship", (), (), True, "starship's session logs: only written, never read back, run or sourced"),
)


# Per-project tool caches: each project gets its own directory for these
# tools' caches (outside the project tree, so it is not committed), writable
# for that project's confined processes only, so one project cannot poison
# another's builds. (variable the tool reads, subdirectory). CARGO_HOME and
# GRADLE_USER_HOME also hold config: cargo still finds ~/.cargo/config.toml
# from a project beneath the home (it walks up from the cwd). Sharing the
# user's own caches is a profile (peninsula/profiles: npm, pip, go, cargo,
# pnpm). pnpm 11 and later read pnpm_config_*; pnpm 10 finds its store
# under PNPM_HOME (also its global bin dir, refused inside a project
# anyway), and reads its metadata cache's place only from npm_config_cache_dir,
# which npm itself warns about on every run: so pnpm 10 is refused ~/.cache/pnpm.
CACHE_ENV = (
    ("npm_config_cache", "npm"),
    ("PIP_CACHE_DIR", "pip"),
    ("UV_CACHE_DIR", "uv"),
    ("GOCACHE", "go-build"),
    ("GOMODCACHE", "go-mod"),
    ("CARGO_HOME", "cargo"),
    ("YARN_CACHE_FOLDER", "yarn"),
    ("GRADLE_USER_HOME", "gradle"),
    ("PNPM_HOME", "pnpm"),
    ("pnpm_config_store_dir", "pnpm/store"),
    ("pnpm_config_cache_dir", "pnpm/cache"),
    ("pnpm_config_state_dir", "pnpm/state"),
)


def cache_home() -> str:
    value = os.environ.get("XDG_CACHE_HOME")
    return value if value and os.path.isabs(value) else os.path.join(home(), ".cache")


def project_cache(root: str, *, create: bool = False) -> str:
    """The cache directory of the project at root (absolute, canonical):
    $XDG_CACHE_HOME/peninsula-projects/<name>-<hash of the root's path>."""
    digest = _sha256_hex(root.encode("utf-8", "surrogateescape"))[:16]
    base = os.path.join(cache_home(), "peninsula-projects")
    # The name only helps a human find it; kept to safe characters, since the
    # hooks read these paths from a NAME=VALUE file (a newline in a
    # project's name would otherwise be a line of its own: a variable).
    name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in os.path.basename(root))
    path = os.path.join(base, f"{name or 'root'}-{digest}")
    if create:
        try:
            os.makedirs(base, mode=0o700, exist_ok=True)
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError:
            pass  # then the tools' writes there are refused, and say where
    return path


def _sha256_hex(data: bytes) -> str:
    """SHA-256 by CPython's own implementation when it has one (the same
    digest): hashlib's import loads OpenSSL, ~3 ms of every start."""
    try:
        if sys.version_info >= (3, 12):
            from _sha2 import sha256
        else:
            from _sha256 import sha256
    except ImportError:  # a Python built without them
        from hashlib import sha256
    return sha256(data).hexdigest()


def cache_env(root: str) -> tuple[tuple[str, str], ...]:
    cache = project_cache(root)
    return tuple((name, os.path.join(cache, sub)) for name, sub in CACHE_ENV)


def home() -> str:
    return os.path.realpath(os.path.expanduser("~"))


def runtime_dir() -> str | None:
    value = os.environ.get("XDG_RUNTIME_DIR")
    return value if value and os.path.isabs(value) and os.path.isdir(value) else None


def state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(home(), ".local", "state")
    return os.path.join(base, "peninsula")


def default_log() -> str:
    return os.path.join(state_dir(), "denials.jsonl")


def temp_roots() -> tuple[str, ...]:
    roots = [r for r in TEMP_ROOTS if os.path.isdir(r)]
    runtime = runtime_dir()
    if runtime:
        roots.append(runtime)
    return tuple(roots)


# GnuPG's home stays protected (gpg.conf, gpg-agent.conf, scdaemon.conf,
# common.conf and dirmngr.conf name programs gpg runs; the keyrings say whose
# signatures are good; the trust database's ownertrust too). But gpg takes a
# lock beside its keyring and its trust database even to sign (git commit -S)
# or verify, and writes its random seed file on an encryption: these names
# alone are allowed, with a state allowance's rules, so none can become a
# symlink, a foreign hard link, a directory or a rename target. What is
# written there: a pid (a lock's contents) and random bytes (which a
# confined process can read anyway: reads are not confined). gpg reads the
# trust database when it cannot write it ("Note: trustdb not writable"): a
# verify and an encryption then show one denial of its open.
GNUPG_DIR = ".gnupg"
GNUPG_SEED = "random_seed"
GNUPG_DOTLOCKS = ("pubring.kbx.lock", "pubring.gpg.lock", "trustdb.gpg.lock")


def state_allowances() -> tuple[policy.StateAllowance, ...]:
    base = home()
    return tuple(
        policy.StateAllowance(os.path.join(base, rel), temps, locks, directory, reason)
        for rel, temps, locks, directory, reason in STATE_IN_HOME
    ) + (policy.StateAllowance(os.path.join(gnupg_dir(), GNUPG_SEED), dotlocks=GNUPG_DOTLOCKS,
                               reason="libgcrypt's random seed (random bytes mixed into its pool) and gpg's lock files (a pid)"),)


def state_exceptions() -> tuple[str, ...]:
    """Re-allowing patterns ("!") for the state names that lie inside a
    protected directory: placed right after protected_paths(), so the
    user's own protections still win. Only for policies that carry
    state_allowances(), whose name rules then decide these names."""
    gnupg = gnupg_dir()
    names = (GNUPG_SEED, *GNUPG_DOTLOCKS, policy.DOTLOCK_TEMP)
    # a symlink there would re-allow its target (protections are resolved)
    return tuple("!" + os.path.join(gnupg, name) for name in names if not os.path.islink(os.path.join(gnupg, name)))


def gnupg_dir() -> str:
    """~/.gnupg where it really is (a dotfiles checkout may hold it): the
    place the supervisor's resolved paths name."""
    return os.path.realpath(os.path.join(home(), GNUPG_DIR))


# In the user runtime dir (writable for sockets and runtime files): systemd
# --user loads units from $XDG_RUNTIME_DIR/systemd (user/, transient/,
# generator*/, user.control/), and runs them at the next daemon-reload. The
# session services' sockets: a confined process that put its own socket at
# one of these names would sit between the service and every unconfined
# client later (the session bus carries systemd's and the keyring's calls).
PROTECTED_IN_RUNTIME = ("systemd", "bus", "dbus-1", "keyring", "at-spi", "pulse", "pipewire-0", "wayland-*")


# Where the user's own servers listen, and the clients the user runs later,
# unconfined, connect without asking who listens: a confined process that
# put a socket (or a symlink to one) there first, or in place of the real
# one, would be the server those clients obey or hand their secrets to.
# (place, why). UID, USER and RUNTIME are filled in by protected_sockets();
# a RUNTIME entry is dropped without a runtime dir. Inside a project, tmux
# and screen get a directory of the project's own (config/socketdirs.py).
PROTECTED_SOCKETS = (
    ("/tmp/ssh-*", "ssh-agent's own directories (ssh-XXXXXXXXXX/agent.PID): `ssh-add` hands a fake agent the private key it loads, whether or not the session started with that agent"),
    ("/tmp/tmux-{UID}", "tmux's servers: a fake `default` would be the server the next `tmux` attaches to, and a tmux server can make its client run commands"),
    ("/run/screen/S-{USER}", "screen's sessions: `screen -r` attaches to whatever listens there"),
    ("{RUNTIME}/gnupg", "gpg-agent's and dirmngr's sockets (S.gpg-agent, .ssh, .extra, .browser, S.dirmngr, S.keyboxd): a fake agent is handed passphrases and signs what it likes"),
    ("/tmp/.X11-unix", "the X displays: an X client sends its keystrokes and windows to whatever listens at X<n>"),
    ("/tmp/.ICE-unix", "the X session manager: its clients take commands from it"),
    ("/tmp/emacs{UID}", "the emacs server's socket without a runtime dir: emacsclient sends it files and code to evaluate"),
    ("{RUNTIME}/emacs", "the emacs server's socket"),
    ("/tmp/nvim.{USER}", "nvim's server sockets without a runtime dir: `nvim --server` sends them keys and commands"),
    ("{RUNTIME}/nvim.*", "nvim's server sockets (nvim.PID.N)"),
)


def protected_sockets() -> tuple[str, ...]:
    """PROTECTED_SOCKETS for this user: in `run`, and in every confined
    policy of the shell session (a project's, strict)."""
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    runtime = runtime_dir()
    shipped = tuple(
        place.format(UID=os.getuid(), USER=user, RUNTIME=runtime)
        for place, _why in PROTECTED_SOCKETS if runtime or "{RUNTIME}" not in place
    )
    return shipped + tuple(dict.fromkeys(_sockets_named_by_env(os.environ, runtime)))


def _symlinks_on_the_way(path: str) -> list[str]:
    """The symlinks that lead to path, each as a pattern that matches its
    own name only (protections are resolved, so the plain name would mean
    its target): replacing one would send the clients that follow it
    elsewhere. A name with no letter or digit to bracket is left out."""
    found, walked = [], "/"
    for part in [p for p in path.split("/") if p]:
        walked = os.path.join(walked, part)
        if os.path.islink(walked):
            index = next((i for i, c in enumerate(part) if c.isalnum()), None)
            if index is not None:
                exact = glob.escape(part[:index]) + f"[{part[index]}]" + glob.escape(part[index + 1:])
                found.append(os.path.join(os.path.realpath(os.path.dirname(walked)), exact))
    return found


def _sockets_named_by_env(env, runtime: str | None) -> list[str]:
    """The places the user's own clients find their servers by, as the
    session or run was started with them: the ssh agent's socket and its
    directory (ssh-agent's /tmp/ssh-XXXX: `ssh-add` hands a fake agent the
    private key), tmux's ($TMUX_TMPDIR, the server named by $TMUX: its
    client sends its whole environment), screen's ($SCREENDIR) and gpg's
    ($GNUPGHOME). A directory is protected only when it is the server's
    own, never a shared one (/tmp, the runtime dir, the home)."""
    shared = {"/", "/tmp", "/var/tmp", "/dev/shm", home(), runtime or "/tmp"}
    places = []

    def socket_and_its_dir(path: str) -> None:
        if not path.startswith("/"):
            return
        places.extend(_symlinks_on_the_way(path))  # `ln -s` of the agent's socket, screen's and tmux's recipe
        places.append(path)
        parent = os.path.dirname(path)
        if parent not in shared and os.path.dirname(parent) in shared:
            places.append(parent)

    socket_and_its_dir(env.get("SSH_AUTH_SOCK", ""))
    socket_and_its_dir(env.get("TMUX", "").split(",", 1)[0])
    for name, sub in (("TMUX_TMPDIR", f"tmux-{os.getuid()}"), ("SCREENDIR", ""), ("GNUPGHOME", "")):
        value = env.get(name, "")
        if value.startswith("/"):
            path = os.path.join(value, sub) if sub else value
            if path.rstrip("/") not in shared:
                places.append(path.rstrip("/"))
    return places


def protected_paths() -> tuple[str, ...]:
    base = home()
    return tuple(os.path.join(base, rel) for rel in PROTECTED_IN_HOME) + own_installation()


def own_installation() -> tuple[str, ...]:
    """Where the code peninsula runs from lives: its package, the
    directories its dependencies are imported from (with their .pth files),
    and the virtual environment it runs in. All of it runs unconfined at the
    next start (the supervisor, the shell hook), wherever it was installed:
    in the home, /tmp or a project."""
    global _own_installation
    if _own_installation is None:
        import importlib.util
        import sys

        places = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # the package: config/..
        for name in RUNTIME_DEPENDENCIES:
            spec = importlib.util.find_spec(name)  # found, not imported
            if spec is not None and spec.origin:
                # a package's directory holds it; a module's, its file
                places.append(os.path.dirname(os.path.dirname(spec.origin)) if spec.submodule_search_locations
                              else os.path.dirname(spec.origin))
        if sys.prefix != sys.base_prefix:
            places.append(sys.prefix)
        _own_installation = tuple(dict.fromkeys(os.path.realpath(p) for p in places))
    return _own_installation


RUNTIME_DEPENDENCIES = ("landlockpy", "pyseccomp", "tomlkit")
_own_installation: tuple[str, ...] | None = None


def protected_in_runtime() -> tuple[str, ...]:
    """PROTECTED_IN_RUNTIME, for the shell session's and `peninsula run`'s
    policies (run's matter only with --write $XDG_RUNTIME_DIR: it does not
    make the runtime dir writable by itself)."""
    runtime = runtime_dir()
    return tuple(os.path.join(runtime, rel) for rel in PROTECTED_IN_RUNTIME) if runtime else ()


def session_root() -> str:
    runtime = runtime_dir()
    if runtime:
        return os.path.join(runtime, "peninsula")
    return os.path.join("/tmp", f"peninsula-{os.getuid()}")
