"""`peninsula run`: confine one command and everything it starts.

A thin face over peninsula.Sandbox: every flag is a Sandbox keyword.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from peninsula.cli.usage import fail
from peninsula.cli.registry import summary

RUN_EPILOG = """\
what is writable:
  the project directory (default: the current directory), /tmp, /var/tmp,
  /dev/shm, the terminal and /dev/null, and every --write PATH
  ($XDG_RUNTIME_DIR is not: the user's service sockets live there). Shell start-up files, ~/.ssh, ~/.gnupg, git's global config,
  toolchains in ~/.local/bin, ~/.cargo/bin, ~/.rustup and peninsula's own
  files stay protected even beneath a writable root. Reading and executing
  are never restricted.

order of options:
  profiles first, then --config files, then the flags on the command line;
  lists add up, later scalars win.

exit status:
  the command's own status; 128+N when it was killed by signal N;
  124 the --limit-walltime was reached (everything was killed);
  123 the supervisor died (the command's writes were cut off);
  125 peninsula could not set up the sandbox (bad option, bad config,
      kernel without Landlock, seccomp user-notify or the namespaces asked
      for, nesting);
  126 the command could not be executed; 127 the command was not found.
"""


def register(sub) -> None:
    run = sub.add_parser(
        "run",
        help=summary("run"),
        description="Run CMD so that it, and every process it starts, can write only inside "
        "the project and the allowed paths.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    files = run.add_argument_group("files")
    files.add_argument("--project", metavar="DIR", help="the writable project directory (default: current directory)")
    files.add_argument("--write", "-w", metavar="PATH", action="append", default=[], help="also allow writes beneath PATH (repeatable)")
    files.add_argument("--protect", metavar="PATH", action="append", default=[], help="deny writes beneath PATH even inside a writable root (repeatable; globs allowed)")
    files.add_argument("--read-only", action="store_true", help="no writes except the temp dirs and terminal")
    files.add_argument("--fast", action="store_true",
                       help="let Landlock alone judge exclusive creates and mkdir/unlink/rename/link/symlink "
                       "(much faster on file-heavy work; those denials get no notice line). Applied only when "
                       "no protected path lies inside a writable root")
    files.add_argument("--best-effort", action="store_true",
                       help="run even if this kernel lacks Landlock or its scoping, saying exactly what is not enforced "
                       "(default: refuse)")
    files.add_argument("--profile", "-p", metavar="NAME", action="append", default=[], help="apply a named profile (repeatable; see `peninsula profiles`)")
    files.add_argument("--config", metavar="FILE", action="append", default=[], help="TOML file with the same options (repeatable)")

    limits = run.add_argument_group("resource limits (set in the command before exec, soft and hard; only root can raise them again)")
    limits.add_argument("--limit-as", metavar="SIZE", help="address space (virtual memory), e.g. 512M, 2G")
    limits.add_argument("--limit-cpu", metavar="SECONDS", help="CPU time per process; SIGXCPU when reached")
    limits.add_argument("--limit-fsize", metavar="SIZE", help="largest file a process may write; SIGXFSZ beyond")
    limits.add_argument("--limit-nofile", metavar="N", help="open file descriptors per process")
    limits.add_argument("--limit-nproc", metavar="N", help="processes of this user, all of them counted; for root (whom RLIMIT_NPROC does not bind) tasks in the sandbox, by a pids cgroup")
    limits.add_argument("--limit-walltime", metavar="SECONDS", help="kill the command and everything it started after SECONDS; exit 124")

    ns = run.add_argument_group("namespaces (an unprivileged user gets a user namespace mapping only its own ids)")
    ns.add_argument("--unshare-net", action="store_true", help="no network: a new network namespace with only loopback (up)")
    ns.add_argument("--unshare-pid", action="store_true", help="a new pid namespace with its own /proc")
    ns.add_argument("--unshare-ipc", action="store_true", help="new System V IPC and POSIX message queue namespace")
    ns.add_argument("--unshare-uts", action="store_true", help="a new host name namespace")
    ns.add_argument("--hostname", metavar="NAME", help="the host name inside (needs --unshare-uts)")

    net = run.add_argument_group("network (Landlock ABI 4; with neither flag, the network is untouched)")
    net.add_argument("--allow-connect", metavar="PORT", action="append", default=[], help="allow TCP connect to PORT; all other TCP connects and binds are refused (repeatable)")
    net.add_argument("--allow-socket", metavar="PATH", action="append", default=[],
                     help="let confined processes reach the unix socket PATH (globs allowed) although its listener "
                     "is outside the sandbox and acts with your rights (repeatable; see README, 'Sockets')")
    net.add_argument("--allow-loopback", metavar="PORT", action="append", default=[],
                     help="let confined processes reach TCP/UDP PORT on this host (loopback, its own addresses) although "
                     "its listener is outside the sandbox and acts with your rights (repeatable; see README, 'Sockets')")
    net.add_argument("--allow-bind", metavar="PORT", action="append", default=[], help="allow TCP bind to PORT; all other TCP connects and binds are refused (repeatable)")

    env = run.add_argument_group("environment")
    env.add_argument("--clear-env", action="store_true", help="start the command with an empty environment")
    env.add_argument("--keep-env", metavar="NAME", action="append", default=[], help="with --clear-env, keep NAME (repeatable; globs like LC_* allowed)")
    env.add_argument("--setenv", metavar="NAME=VALUE", action="append", default=[], help="set a variable (repeatable)")
    env.add_argument("--workdir", metavar="DIR", help="run the command in DIR (default: the current directory)")

    out = run.add_argument_group("output")
    out.add_argument("--log", metavar="FILE", help="append one JSON line per denial here (default: $XDG_STATE_HOME/peninsula/denials.jsonl)")
    out.add_argument("--log-max-size", metavar="SIZE",
                     help="the log and its rotated part FILE.1 together stay under SIZE (default: 8M; at least 64K)")
    out.add_argument("--report", metavar="FILE", help="write the JSON result (see docs/run.md) to FILE, or - for stderr")
    out.add_argument("--quiet", "-q", action="store_true", help="do not print denial notices")
    out.add_argument("--verbose", "-v", action="store_true",
                     help="print supervisor diagnostics (at the end: requests answered in C and in Python, CPU per request)")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    run.set_defaults(handler=main)


def main(args) -> int:
    from peninsula.sandbox.api import Sandbox
    from peninsula.sandbox.report import EXIT_SETUP, Result, SandboxError

    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        return fail("run: no command given (usage: peninsula run [OPTIONS] -- CMD [ARGS...])")
    if args.project and not os.path.isdir(args.project):
        return fail(f"run: --project {args.project}: not a directory")
    if args.workdir and not os.path.isdir(args.workdir):
        return fail(f"run: --workdir {args.workdir}: not a directory")
    try:
        box = Sandbox(
            project=args.project,
            write=args.write,
            protect=args.protect,
            read_only=args.read_only,
            best_effort=args.best_effort,
            fast=args.fast,
            log=args.log,
            log_max_size=args.log_max_size,
            quiet=args.quiet,
            verbose=args.verbose,
            profiles=args.profile,
            configs=args.config,
            limit_as=args.limit_as,
            limit_cpu=args.limit_cpu,
            limit_fsize=args.limit_fsize,
            limit_nofile=args.limit_nofile,
            limit_nproc=args.limit_nproc,
            limit_walltime=args.limit_walltime,
            unshare_net=args.unshare_net,
            unshare_pid=args.unshare_pid,
            unshare_ipc=args.unshare_ipc,
            unshare_uts=args.unshare_uts,
            hostname=args.hostname,
            allow_connect=args.allow_connect,
            allow_bind=args.allow_bind,
            allow_socket=args.allow_socket,
            allow_loopback=args.allow_loopback,
            clear_env=args.clear_env,
            keep_env=args.keep_env,
            setenv=args.setenv,
            workdir=args.workdir,
        )
        from peninsula.sandbox.nested import NestedRun
        from peninsula.sandbox.run_channel import RunChannel, run_for_nesting
        from peninsula.shell.nested import SessionChannel, session_for_nesting

        # Under a session's or an outer run's filter a run of its own would
        # get EBUSY: that supervisor judges it instead (sandbox/nested.py).
        outer_run = run_for_nesting()  # set by the innermost run's supervisor, if any
        session_dir = session_for_nesting() if outer_run is None else None
        channel = RunChannel(outer_run) if outer_run is not None else SessionChannel(session_dir) if session_dir else None
        running = NestedRun(box, command, channel) if channel else box.spawn(command)
    except SandboxError as err:
        if args.report:  # a report is written for every run, refused ones too
            now = time.time()
            _write_report(args.report, Result("setup failed", EXIT_SETUP, None, now, 0.0, 0.0, 0.0, 0, 0, [], f"peninsula: {err}"))
        return fail(str(err))

    def stop(_sig, _frame):
        running.kill()

    # A cancelled job (SIGTERM, SIGHUP to peninsula) takes the whole tree with it.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    # Ctrl-C and Ctrl-\ reach the command from the terminal; like a shell
    # waiting for its job, we return with its status.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)
    result = running.wait()
    if result.message and result.status in ("setup failed", "timed out"):
        sys.stderr.write(result.message + "\n")
    if args.report:
        _write_report(args.report, result)
    return result.returncode


def _write_report(target: str, result) -> None:
    text = result.to_json(indent=2) + "\n"
    if target == "-":
        sys.stderr.write(text)
        return
    try:
        with open(target, "w") as handle:
            handle.write(text)
    except OSError as err:
        sys.stderr.write(f"peninsula: cannot write the report {target}: {err.strerror}\n")
