"""`peninsula ps` and `peninsula exec --session ID -- CMD`."""

from __future__ import annotations

import json
import os

from peninsula.cli.usage import fail
from peninsula.cli.registry import summary


def register(sub) -> None:
    ps = sub.add_parser("ps", help=summary("ps"),
                        description="List this user's live peninsula shell sessions with their shell pid and state.")
    ps.add_argument("--json", action="store_true", help="one JSON object per session")
    ps.set_defaults(handler=cmd_ps)
    run = sub.add_parser(
        "exec",
        help=summary("exec"),
        description="Start CMD under session ID's supervisor (see `peninsula ps`), judged by the "
        "state of that session's shell right now, with this terminal's stdin, stdout, stderr and "
        "current directory (e.g. from an IDE terminal). Refused to confined callers.",
    )
    run.add_argument("--session", required=True, metavar="ID", help="the session, as `peninsula ps` lists it")
    run.add_argument("argv", nargs="+", metavar="-- CMD [ARGS...]")
    run.set_defaults(handler=cmd_exec)


def sessions() -> list[tuple[str, dict]]:
    from peninsula.shell.control import ask
    from peninsula.config.defaults import session_root

    root = session_root()
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    live = []
    for name in names:
        reply = ask({"op": "status"}, os.path.join(root, name), timeout=1.0)
        if reply is not None and "session" in reply:
            live.append((os.path.join(root, name), reply))
    return live


def cmd_ps(args) -> int:
    found = sessions()
    if args.json:
        for _, reply in found:
            print(json.dumps({k: reply.get(k) for k in ("session", "shell_pid", "shell_state", "shell_project")}))
        return 0
    if not found:
        print("no live peninsula sessions")
        return 0
    print(f"{'SESSION':<24} {'SHELL PID':>9}  STATE")
    for _, reply in found:
        print(f"{reply['session']:<24} {reply['shell_pid']:>9}  {reply['shell_state']}")
    return 0


def cmd_exec(args) -> int:
    from peninsula.shell.join import JoinError, run_joined
    from peninsula.config.defaults import session_root

    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        return fail("exec: no command given (usage: peninsula exec --session ID -- CMD [ARGS...])")
    if "/" in args.session or args.session in (".", ".."):
        return fail(f"exec: bad session id {args.session!r}")
    session_dir = os.path.join(session_root(), args.session)
    if not os.path.isdir(session_dir):
        return fail(f"exec: no session {args.session} (see `peninsula ps`)")
    try:
        return run_joined(session_dir, argv)
    except JoinError as err:
        return fail(f"exec: {err}")
