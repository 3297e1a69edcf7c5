"""`peninsula status` and `peninsula check PATH`."""

from __future__ import annotations

import json
import os

from peninsula.cli.usage import fail
from peninsula.cli.registry import summary


def register(sub) -> None:
    status = sub.add_parser("status", help=summary("status"),
                            description="Ask this session's supervisor how it judges commands started from here.")
    status.add_argument("--json", action="store_true", help="print the supervisor's answer as JSON")
    status.set_defaults(handler=cmd_status)
    check = sub.add_parser("check", help=summary("check"),
                           description="Judge a write to PATH the way the supervisor would for a command started here.")
    check.add_argument("path")
    check.add_argument("--connect", action="store_true",
                       help="judge a connect to the unix socket PATH instead of a write (asks the session's supervisor; "
                            "outside a session, judged as `peninsula run` would)")
    check.add_argument("--json", action="store_true", help="print the answer as JSON")
    check.set_defaults(handler=cmd_check)


def cmd_status(args) -> int:
    from peninsula.shell.control import ask
    from peninsula.shell.environ import ENV_SESSION

    if not os.environ.get(ENV_SESSION):
        print("not in a peninsula session (start one with `peninsula shell` or the shell hook)")
        return 1
    reply = ask({"op": "status"})
    if reply is None:
        return fail("cannot reach this session's supervisor; it may have died (writes then fail with ENOSYS)")
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0
    print(f"session {reply['session']} (shell pid {reply['shell_pid']}): shell is {reply['shell_state']}")
    print(f"commands started here now: {reply['caller_state']}")
    project = reply.get("project") or reply.get("shell_project")
    for item in reply.get("project_configs") or ():
        if item.get("error"):
            print(f"project config: {item['error']}")
        elif item["trusted"]:
            print(f"project config: {item['path']}: trusted (its allowances apply)")
        else:
            print(f"project config: {item['path']}: NOT trusted (only its protections apply; "
                  f"to apply it, run `peninsula trust {project}` at a prompt outside the project)")
    if reply.get("project_configs") == []:
        print(f"project config: none ({project} has no .peninsula.toml)")
    if reply["writable"] is not None:
        print("writable:")
        for root in reply["writable"]:
            print(f"  {root}")
        print("protected (denied even beneath a writable root):")
        for pattern in reply["protected"]:
            print(f"  {pattern}")
    if reply.get("sockets") is not None:
        print("unix sockets a confined command may reach although their listener is outside (by inode, as found at start):")
        for entry in reply["sockets"]:
            if entry.get("place"):
                print(f"  {entry['path']}: {entry['service']}: {entry['reason']} (any socket there, in a private directory of yours)")
                continue
            state = "" if entry["present"] else " (not there at start: not allowed)"
            print(f"  {entry['path']}: {entry['service']}: {entry['reason']}{state}")
        print("  and any socket whose listener is in the same confinement")
    if reply.get("loopback_ports") is not None:
        print("this host's TCP/UDP ports a confined command may reach although their listener is outside:")
        for entry in reply["loopback_ports"]:
            print(f"  {entry['port']}: {entry['reason']}")
        print("  and any port whose socket is held in the same confinement")
    return 0


def resolve_for_check(path: str) -> str:
    """Where a write to path would land: symlinks followed, as the kernel would."""
    absolute = os.path.abspath(path)
    return os.path.realpath(absolute)


def cmd_check(args) -> int:
    from peninsula.shell.control import ask
    from peninsula.shell.environ import ENV_SESSION

    if args.connect:
        return _check_connect(args)
    where = resolve_for_check(args.path)
    if os.environ.get(ENV_SESSION):
        reply = ask({"op": "check", "path": where})
        if reply is None:
            return fail("cannot reach this session's supervisor")
        source = "this session's supervisor"
    else:
        reply = offline_check(where)
        source = "no session: judged as a shell started in this directory would"
    if args.json:
        print(json.dumps({"path": where, **reply, "source": source}))
    else:
        verdict = "allowed" if reply["allow"] else "DENIED"
        print(f"{where}: {verdict}: {reply['reason']} ({source})")
    return 0 if reply["allow"] else 1


def offline_check(where: str) -> dict:
    from peninsula.policy import engine as policy
    from peninsula.config.project import find_project, project_policy
    from peninsula.config.user import load_user_config

    conf = load_user_config()
    project = find_project(os.path.realpath(os.getcwd()), conf)
    if project is None:
        return {"allow": True, "reason": "not inside a project: commands here are not confined"}
    pol, _ = project_policy(project, conf)
    decision = policy.decide_write(pol, where)
    return {"allow": decision.allow, "reason": f"{decision.reason} (project {project.root})"}


def _check_connect(args) -> int:
    from peninsula.shell.control import ask
    from peninsula.shell.environ import ENV_SESSION

    where = resolve_for_check(args.path)
    if os.environ.get(ENV_SESSION):
        reply = ask({"op": "check_connect", "path": where})
        if reply is None or "allow" not in reply:
            return fail("cannot reach this session's supervisor")
        source = "this session's supervisor"
    else:
        reply = offline_connect(where)
        source = "no session: judged as a `peninsula run` started here would, without --allow-socket"
    if args.json:
        print(json.dumps({"path": where, **reply, "source": source}))
    else:
        print(f"connect {where}: {'allowed' if reply['allow'] else 'DENIED'}: {reply['reason']} ({source})")
    return 0 if reply["allow"] else 1


def offline_connect(where: str) -> dict:
    """A run's answer to a connect to the unix socket at where: the shipped
    allow-list (found now, as a run finds it at its start), else refused,
    since no listener running now is inside a run not yet started."""
    from peninsula.supervisor.handlers.allowlist import AllowList, shipped_allowlist, shipped_places
    from peninsula.supervisor.handlers.sockets import socket_at

    info, failed = socket_at(where)
    if failed is not None:
        return failed
    entry = AllowList(shipped_allowlist(), shipped_places()).lookup(info, os.path.realpath(where))
    if entry is not None:
        return {"allow": True, "reason": f"on the shipped allow-list: {entry[0]}: {entry[2]}"}
    return {"allow": False, "reason": "its listener is outside the run: refused (EACCES) unless the run's command "
            f"starts it; allow with `peninsula run --allow-socket {where}`"}
