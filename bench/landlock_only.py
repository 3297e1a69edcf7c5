"""Landlock-only baseline for the benchmark: the kernel layer of peninsula, no supervisor.

    python bench/landlock_only.py --project DIR -- CMD [ARGS...]
    python bench/landlock_only.py --print-roots --project DIR

Applies peninsula.kernel.landlock.restrict_self with exactly the writable roots
`peninsula run --project DIR` gives the command (the project, the temp dirs,
$XDG_RUNTIME_DIR, the terminal and null devices), with signal and abstract
socket scoping as the command gets it, then execs CMD. No seccomp filter, no
supervisor: this is the cost of the kernel-enforced baseline alone.

--write-rights-only is a proposal, measured: the same roots, but the ruleset
handles only the write rights (READ_FILE, READ_DIR, EXECUTE and IOCTL_DEV
are left unhandled instead of being handled and allowed on /). Landlock then
has nothing to check on a read-only open or an exec, so they skip its path
walk; what can be written is unchanged.
"""

from __future__ import annotations

import os
import sys


def roots_for(project: str) -> tuple[str, ...]:
    from peninsula.sandbox.api import Sandbox

    box = Sandbox(project=project, quiet=True)
    return box.baseline_roots(box.policy())


def restrict_write_rights_only(roots: tuple[str, ...]) -> None:
    from landlockpy import AccessFS, Ruleset, Scope, fs_for_abi

    from peninsula.kernel import landlock as baseline

    abi = baseline.abi_version()
    unhandled = AccessFS.READ_FILE | AccessFS.READ_DIR | AccessFS.EXECUTE | AccessFS.IOCTL_DEV | AccessFS.RESOLVE_UNIX
    handled = fs_for_abi(abi) & ~unhandled
    scopes = Scope.SIGNAL | Scope.ABSTRACT_UNIX_SOCKET if abi >= baseline.SCOPING_ABI else Scope.NONE
    ruleset = Ruleset(handled_fs=handled, scoped=scopes, best_effort=True)
    file_rights = AccessFS.WRITE_FILE | AccessFS.TRUNCATE
    for root in roots:
        if os.path.exists(root):
            ruleset.allow_path(root, handled if os.path.isdir(root) else file_rights & handled)
    try:
        ruleset.restrict(no_new_privs=True)
    finally:
        ruleset.close()


def main(argv: list[str]) -> int:
    usage = "usage: landlock_only.py [--print-roots] [--write-rights-only] --project DIR [-- CMD ARGS...]"
    project, print_roots, command, write_only = None, False, [], False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            command = argv[i + 1 :]
            break
        if arg == "--project" and i + 1 < len(argv):
            project = argv[i + 1]
            i += 2
            continue
        if arg == "--write-rights-only":
            write_only = True
            i += 1
            continue
        if arg == "--print-roots":
            print_roots = True
            i += 1
            continue
        sys.stderr.write(usage + "\n")
        return 2
    if project is None or not (command or print_roots):
        sys.stderr.write(usage + "\n")
        return 2
    roots = roots_for(project)
    if print_roots:
        print("\n".join(roots))
        return 0
    if write_only:
        restrict_write_rights_only(roots)
    else:
        from peninsula.kernel import landlock as baseline

        baseline.restrict_self(roots, scoped=True)
    try:
        os.execvp(command[0], command)
    except OSError as err:
        sys.stderr.write(f"landlock_only: cannot run {command[0]}: {err.strerror}\n")
        return 127 if err.errno == 2 else 126


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
