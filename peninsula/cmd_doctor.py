"""`peninsula doctor`: what this kernel lets peninsula enforce, said plainly."""

from __future__ import annotations

import errno
import os

from . import baseline


def probe_user_notify() -> tuple[bool, str]:
    """Load a filter with a listener in a throwaway child and report."""
    from .seccomp import FilterProgram, build_filter_bpf

    try:
        program = FilterProgram(build_filter_bpf())
    except Exception as err:  # libseccomp missing or broken
        return False, f"cannot build the seccomp filter: {err}"
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 0
        try:
            from . import libc

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
        return False, "seccomp user-notify: this process already runs under a notify supervisor (EBUSY): peninsula cannot nest"
    return False, f"seccomp user-notify: not available ({os.strerror(number) if number else 'unknown error'})"


def register(sub) -> None:
    doctor = sub.add_parser("doctor", help="say what this kernel lets peninsula enforce")
    doctor.set_defaults(handler=main)


def main(args=None) -> int:
    ok = True
    lines = []
    abi = baseline.abi_version()
    report = baseline.report_for((), scoped=True)
    lines.extend(report.lines())
    if abi <= 0:
        ok = False
    notify_ok, text = probe_user_notify()
    lines.append(text)
    ok = ok and notify_ok
    sandbox = os.environ.get("PENINSULA_SANDBOX")
    if sandbox:
        lines.append(f"this shell runs inside a peninsula sandbox ({sandbox})")
    lines.append("enforced: " + ("writes confined (Landlock baseline + supervisor policy)" if ok else "NOTHING: peninsula refuses to run here"))
    for line in lines:
        print(line)
    return 0 if ok else 1
