"""`peninsula trust [DIR]` and `peninsula allow PATH`: relaxing policy.

Both are refused to confined processes: the supervisor, asked over the
session's control socket, says whether the caller is confined (it knows the
caller's pid from the socket, not from anything the caller says). Were a
confined process to skip the question, its writes to the trust records and
config files would still be denied: they are protected paths.
"""

from __future__ import annotations

import os
import shlex

from peninsula.cli.usage import fail
from peninsula.cli.registry import summary

REFUSAL = (
    "refused: this command runs confined to {where}, and relaxing the sandbox from inside "
    "it would let the sandboxed code free itself. Run `{command}` at a prompt outside the "
    "project (`cd` out first, on a line of its own: the cd is confirmed at the next prompt) "
    "or in another terminal."
)


def register(sub) -> None:
    trust = sub.add_parser("trust", help=summary("trust"),
                           description="Trust the current content of DIR's .peninsula.toml (and .devenv/peninsula.toml). "
                           "Any later change needs a new `peninsula trust`.")
    trust.add_argument("dir", nargs="?", default=None, help="project directory (default: the project around the current directory)")
    trust.set_defaults(handler=cmd_trust)
    allow = sub.add_parser("allow", help=summary("allow"))
    allow.add_argument("path")
    scope = allow.add_mutually_exclusive_group()
    scope.add_argument("--project", metavar="DIR", nargs="?", const="",
                       help="in DIR's .peninsula.toml (without DIR: the project around the current directory, "
                       "the default there)")
    scope.add_argument("--global", dest="globally", action="store_true", help="in the user config, for every project")
    allow.set_defaults(handler=cmd_allow)


def refuse_if_confined(command) -> str | None:
    """The refusal for a confined caller; command(project root or None) is
    the command line to run instead, from outside."""
    from peninsula.shell.control import ask
    from peninsula.shell.environ import ENV_SESSION

    if os.environ.get(ENV_SESSION):
        reply = ask({"op": "status"})
        if reply is None:
            return "cannot reach this session's supervisor, so cannot tell whether this command is confined"
        if reply.get("confined"):
            project = reply.get("project")
            return REFUSAL.format(where=project or "the temp dirs", command=command(project))
    return None


def _project_dir(arg: str | None) -> str | None:
    from peninsula.config.project import find_project
    from peninsula.config.user import load_user_config

    if arg:
        return os.path.realpath(arg)
    project = find_project(os.path.realpath(os.getcwd()), load_user_config())
    return project.root if project else None


def cmd_trust(args) -> int:
    from peninsula.config.project import PROJECT_CONFIGS, record_trust

    refusal = refuse_if_confined(lambda project: "peninsula trust " + shlex.quote(args.dir and os.path.abspath(args.dir) or project or "DIR"))
    if refusal:
        return fail(refusal)
    root = _project_dir(args.dir)
    if root is None:
        return fail("trust: not inside a project; name the directory: peninsula trust DIR")
    done = 0
    for rel in PROJECT_CONFIGS:
        path = os.path.join(root, rel)
        if os.path.isfile(path):
            try:
                record_trust(os.path.realpath(path))
            except OSError as err:
                return fail(f"trust: cannot record trust for {path}: {err.strerror}")
            print(f"peninsula: trusted {path} as it is now; a later change needs `peninsula trust` again")
            done += 1
    if not done:
        return fail(f"trust: {root} has no .peninsula.toml to trust")
    return 0


def _add_to_list(path: str, key: str, value: str, header: str) -> None:
    import tomlkit

    try:
        with open(path, encoding="utf-8") as handle:
            doc = tomlkit.parse(handle.read())
    except FileNotFoundError:
        doc = tomlkit.document()
        doc.add(tomlkit.comment(header))
    items = doc.get(key)
    if items is None:
        items = tomlkit.array()
        doc[key] = items
    if value not in [str(v) for v in items]:
        items.append(value)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".new", "w", encoding="utf-8") as handle:
        handle.write(tomlkit.dumps(doc))
    os.replace(path + ".new", path)


def cmd_allow(args) -> int:
    from peninsula.config.options import ConfigError, parse_options
    from peninsula.config.project import is_trusted, record_trust
    from peninsula.config.user import config_path, load_user_config

    from peninsula.supervisor.hints import protection_of

    target = os.path.abspath(os.path.expanduser(args.path))

    def instead(project):
        scope = "--global" if args.globally else f"--project {shlex.quote(project or 'DIR')}"
        return f"peninsula allow {shlex.quote(target)} {scope}"

    refusal = refuse_if_confined(instead)
    if refusal:
        return fail(refusal)
    conf = load_user_config()
    pattern = protection_of(os.path.realpath(target), conf.protect)
    if pattern is not None:
        return fail(f"allow: refused: {target} is protected ({pattern}): a confined process writing it could run "
                    "code later, outside the sandbox, so peninsula never makes it writable; nothing was changed")
    if args.project:
        root = os.path.realpath(args.project)
        if not os.path.isdir(root):
            return fail(f"allow: --project {args.project}: not a directory")
    else:
        root = None if args.globally else _project_dir(None)
    if not args.globally and root is None:
        return fail("allow: not inside a project; name it with --project DIR, or use --global to allow PATH "
                    "for every project")
    try:
        if args.globally:
            path = config_path()
            load_user_config(path)  # refuse to edit a broken file
            _add_to_list(path, "write", target, " peninsula user config; see `peninsula allow --help`")
            if not _created(target):
                return 125
            print(f"peninsula: confined processes of every project may now write {target} ({path})"
                  + _landlock_note(target, conf, True))
            return 0
        path = os.path.join(root, ".peninsula.toml")
        before = None
        if os.path.exists(path):
            with open(path, "rb") as handle:
                before = handle.read()
            parse_options(before.decode("utf-8"), path)
        was_trusted = before is None or is_trusted(os.path.realpath(path), before)
        _add_to_list(path, "write", target, " peninsula project config; apply changes with `peninsula trust`")
    except ConfigError as err:
        return fail(f"allow: {err}")
    except OSError as err:
        return fail(f"allow: cannot write {err.filename}: {err.strerror}")
    if was_trusted:
        record_trust(os.path.realpath(path))
        print(f"peninsula: {root} may now write {target} ({path}, trusted)" + _landlock_note(target, conf, False))
    else:
        print(f"peninsula: added {target} to {path}, but that file was not trusted before; "
              f"review it, then run `peninsula trust {root}`")
    return 0 if _created(target) else 125


def _created(target: str) -> bool:
    """The missing parents of an allowed path are created now (by the user,
    unconfined): a confined process could not create them."""
    from peninsula.sandbox.allowed_dirs import create_missing

    try:
        create_missing([target], None, print, leaf=False)
    except OSError as err:
        fail(f"allow: recorded, but {os.path.dirname(target)} does not exist and cannot be created "
             f"({err.strerror}): writes to {target} fail until it exists")
        return False
    return True


def _landlock_note(target: str, conf, globally: bool) -> str:
    """The Landlock baseline of a session is fixed at its start: say when
    the allowance cannot take effect in it."""
    from peninsula.policy.engine import is_beneath
    from peninsula.shell.session import baseline_roots

    if any(is_beneath(os.path.realpath(target), root) for root in baseline_roots(conf)):
        return ""
    if globally:
        return "; it lies outside the Landlock roots of sessions already running: only shells started from now on can write it"
    return ("; but it lies outside every Landlock root (home, the temp dirs, `baseline` in the user config): "
            "writes there fail until you add it to `baseline` and start a new shell")
