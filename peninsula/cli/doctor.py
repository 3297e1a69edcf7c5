"""`peninsula doctor`: what this kernel lets peninsula enforce, said plainly."""

from __future__ import annotations

import errno
import os

from peninsula.kernel import landlock as baseline
from peninsula.cli.registry import summary


def probe_user_notify() -> tuple[bool, str]:
    """Load a filter with a listener in a throwaway child and report."""
    from peninsula.kernel.seccomp import FilterProgram, build_filter_bpf
    from peninsula.supervisor import table

    try:
        program = FilterProgram(build_filter_bpf(table.rules()))
    except Exception as err:  # libseccomp missing or broken
        return False, f"seccomp user-notify: not available: cannot build the filter ({err})"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 0
        try:
            from peninsula.kernel import libc

            libc.prctl_set_no_new_privs()
            try:
                os.close(program.load(killable=True))
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
                os.close(program.load(killable=False))
                code = 2
        except OSError as err:
            os.write(write_fd, str(err.errno).encode())
            code = 1
        os._exit(code)
    os.close(write_fd)
    err = os.read(read_fd, 64)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return True, "seccomp user-notify: available, with WAIT_KILLABLE_RECV"
    if code == 2:
        return True, "seccomp user-notify: available, without WAIT_KILLABLE_RECV (kernel < 5.19: fast timer signals may slow the supervisor)"
    number = int(err or b"0")
    if number == errno.EBUSY:
        if os.environ.get("PENINSULA_SESSION_DIR"):
            return False, ("seccomp user-notify: this process runs under a supervised shell session's filter (EBUSY for "
                           "a new listener): `peninsula run` here nests in the session's supervisor; other notify "
                           "sandboxes (sandlock, nono) must be started outside the session")
        if os.environ.get("PENINSULA_RUN_NEST_FD"):
            return False, ("seccomp user-notify: this process runs under a `peninsula run`'s filter (EBUSY for a new "
                           "listener): `peninsula run` here nests in that run's supervisor; other notify sandboxes "
                           "(sandlock, nono) must be started outside it")
        return False, ("seccomp user-notify: this process already runs under a notify supervisor (EBUSY): peninsula "
                       "cannot nest here; a `peninsula run` nests only inside a supervised shell session or a "
                       "`peninsula run`")
    return False, f"seccomp user-notify: not available ({os.strerror(number) if number else 'unknown error'})"


def register(sub) -> None:
    doctor = sub.add_parser("doctor", help=summary("doctor"))
    doctor.set_defaults(handler=main)


def probe_user_namespaces() -> str:
    """Can this user make a user namespace (needed by run --unshare-* unless root)?"""
    pid = os.fork()
    if pid == 0:
        import ctypes

        CLONE_NEWUSER = 0x10000000
        libc = ctypes.CDLL(None, use_errno=True)
        os._exit(0 if libc.unshare(CLONE_NEWUSER) == 0 else min(ctypes.get_errno(), 250))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return "user namespaces: available (run --unshare-net/-pid/-ipc/-uts work without root)"
    return f"user namespaces: not available ({os.strerror(code)}): run --unshare-* needs root here"


def _supervisor_of(shell_pid: int) -> int | None:
    try:
        with open(f"/proc/{shell_pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def in_session(session: str) -> int:
    """Inside a supervised shell a probe would only meet our own filter
    (EBUSY): report the session instead, from its supervisor."""
    from peninsula.supervisor import fastpath
    from peninsula.shell.control import ask

    lines = list(baseline.report_for((), scoped=True).lines())
    reply = ask({"op": "status"})
    if reply is None:
        lines.append(f"session {session}: its supervisor does not answer (it may have died: trapped writes then "
                     "fail with ENOSYS); start a new shell")
        lines.append("enforced: NOTHING new can be allowed; writes that need the supervisor fail")
        print("\n".join(lines))
        return 1
    supervisor = _supervisor_of(reply["shell_pid"])
    lines.append(f"seccomp user-notify: in use by this session's supervisor (pid {supervisor or '?'}), "
                 f"{reply['requests']} requests answered")
    lines.append("supervisor hot path: " + fastpath.state())
    lines.append(f"session {reply['session']}: shell pid {reply['shell_pid']}, shell is {reply['shell_state']}")
    lines.append(f"commands started here now: {reply['caller_state']}")
    lines.append("nesting: `peninsula run` here is judged by this session's supervisor, by both its policy and the "
                 "one above (not --unshare-*, --allow-connect/--allow-bind, --fast, --verbose); other seccomp notify "
                 "sandboxes (sandlock, nono's supervised mode) get EBUSY from the kernel here: start them from a new "
                 "terminal whose shell is not supervised (PENINSULA_DISABLE=1); a shell started from here stays under "
                 "the session's filter")
    for item in reply.get("project_configs") or ():
        state = item.get("error") or ("trusted" if item["trusted"] else "NOT trusted (only its protections apply)")
        lines.append(f"project config: {item['path']}: {state}" if not item.get("error") else f"project config: {state}")
    missing = baseline.missing_features(scoped=True)
    if missing:
        lines.append("enforced: writes checked by the supervisor (best effort), but NOT: " + "; ".join(missing))
    else:
        lines.append("enforced: writes confined (Landlock baseline + supervisor policy), signals and abstract sockets scoped")
    print("\n".join(lines))
    return 0


def main(args=None) -> int:
    session = os.environ.get("PENINSULA_SESSION")
    if session and not os.environ.get("PENINSULA_SANDBOX"):
        return in_session(session)
    lines = []
    abi = baseline.abi_version()
    lines.extend(baseline.report_for((), scoped=True).lines())
    if abi > 0:
        lines.append(
            "Landlock TCP port rules (run --allow-connect/--allow-bind): "
            + ("available" if abi >= baseline.NETWORK_ABI else f"not available (needs ABI {baseline.NETWORK_ABI})")
        )
    notify_ok, text = probe_user_notify()
    lines.append(text)
    lines.append(probe_user_namespaces())
    from peninsula.supervisor import fastpath

    lines.append("supervisor hot path: " + fastpath.state())
    sandbox = os.environ.get("PENINSULA_SANDBOX") or os.environ.get("PENINSULA_SESSION")
    if sandbox:
        lines.append(f"this process runs inside a peninsula sandbox ({sandbox})")
    missing = baseline.missing_features(scoped=True)
    if not notify_ok:
        verdict = "NOTHING: without seccomp user-notify peninsula refuses to run (best effort cannot replace the supervisor)"
    elif missing:
        verdict = ("refused by default; with best_effort = true: writes checked by the supervisor, but NOT: "
                   + "; ".join(missing))
    else:
        verdict = "writes confined (Landlock baseline + supervisor policy), signals and abstract sockets scoped"
    lines.append("enforced: " + verdict)
    for line in lines:
        print(line)
    return 0 if notify_ok and not missing else 1
