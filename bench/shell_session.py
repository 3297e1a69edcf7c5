"""The bench's shell-session mode: workloads run from a supervised interactive bash.

    .venv/bin/python bench/shell_session.py [--verbose] --project DIR -- CMD...

One `bash -i` on a pty, in a scratch HOME whose .bashrc is only
`eval "$(peninsula hook bash)"` and a prompt: the hook re-execs it under the
session supervisor, as in a user's terminal. The shell then `cd`s into the
project (a directory holding a `.peninsula.toml` marker), so the timeline
judge and the shell's policy answer what the workloads do, not
`peninsula run`'s. Each workload is one command line typed at the prompt;
the shell times it itself with $EPOCHREALTIME (bash 5), around the command
only: the prompt hook, the line's echo and the pty round trip are not in the
figure, the fork and exec of the command are (as in the other modes, where
subprocess.run's fork and exec are).

Run as a script, it runs CMD once that way and prints the elapsed time and,
with --verbose (`peninsula shell --verbose`), the session supervisor's own
counts at exit: requests answered by the compiled path and by Python, per
syscall.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import shlex
import signal
import sys
import termios
import time
from pathlib import Path

PENINSULA = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "peninsula"
PROMPT = "PSHELL-READY> "
# The result line is assembled by printf, so the echoed command line never matches it.
DONE = re.compile(rb"PSHELL-DONE (\d+) (\d+)[.,](\d+) (\d+)[.,](\d+)\r?\n")


class ShellError(RuntimeError):
    pass


class ShellSession:
    """A supervised interactive bash standing in `project`."""

    def __init__(self, project: Path, home: Path, env: dict, *, verbose: bool = False, timeout: float = 600.0):
        self.project = Path(project)
        self.home = Path(home)
        self.timeout = timeout
        self.seen = b""
        self.home.mkdir(parents=True, exist_ok=True)
        marker = self.project / ".peninsula.toml"
        if not marker.exists():
            marker.write_text("# the bench's project marker: makes this directory a peninsula project\n")
        # The session's Landlock baseline covers home and the temp dirs only;
        # a project elsewhere needs its parent among the user's baseline roots.
        config = self.home / ".config" / "peninsula" / "config.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(f"baseline = [{json.dumps(str(self.project.parent))}]\n")
        (self.home / ".bashrc").write_text(f'eval "$({PENINSULA} hook bash)"\nPS1="{PROMPT}"\n')
        self.env = {k: v for k, v in env.items() if not k.startswith("PENINSULA_")}
        self.env.update(HOME=str(self.home), TERM="dumb", SHELL="/bin/bash", XDG_CONFIG_HOME=str(self.home / ".config"))
        bash = "/bin/bash"
        # The hook re-execs a plain `bash -i` under the supervisor; with
        # --verbose the bench starts the session itself (the hook then sees a
        # session and stays quiet) so the supervisor prints its counts at exit.
        argv = [str(PENINSULA), "shell", "--verbose", "--", bash, "-i"] if verbose else [bash, "-i"]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(self.home)
            os.execve(argv[0], argv, self.env)
        attrs = termios.tcgetattr(self.fd)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        try:
            self._read_until(PROMPT.encode(), 30.0)
            self.line(f"stty -echo; cd {shlex.quote(str(self.project))}")
            self.check_confined()
        except BaseException:
            self.close()
            raise

    def _read_until(self, needle, timeout: float):
        """Read the pty until `needle` (bytes or a compiled regex) shows; return the match."""
        deadline = time.monotonic() + timeout
        while True:
            match = needle.search(self.seen) if hasattr(needle, "search") else None
            if match is None and not hasattr(needle, "search"):
                at = self.seen.find(needle)
                if at >= 0:
                    self.seen = self.seen[at + len(needle):]
                    return needle
            elif match is not None:
                self.seen = self.seen[match.end():]
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise ShellError(f"shell session: no {needle!r} within {timeout:.0f} s; the pty showed:\n"
                                 f"{self.seen[-2000:].decode(errors='replace')}")
            ready, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError as err:
                    raise ShellError(f"shell session: the shell is gone ({err}); it showed:\n"
                                     f"{self.seen[-2000:].decode(errors='replace')}") from None
                self.seen += chunk

    def line(self, text: str, timeout: float = 30.0) -> None:
        """Type one line and wait for the next prompt."""
        self.seen = b""
        os.write(self.fd, text.encode() + b"\n")
        self._read_until(PROMPT.encode(), timeout)

    def check_confined(self) -> None:
        """Fail closed: a bench of an unsupervised shell would measure nothing."""
        probe = self.home / "outside-probe"
        self.seen = b""
        os.write(self.fd, f"echo x > {shlex.quote(str(probe))}; printf 'PSHELL-%s %s\\n' PROBE $?\n".encode())
        match = self._read_until(re.compile(rb"PSHELL-PROBE (\d+)"), 30.0)
        self._read_until(PROMPT.encode(), 30.0)
        if probe.exists() or match[1] == b"0":
            raise ShellError("shell session: a write outside the project succeeded from the shell standing in it: "
                             "the shell is not supervised (is the hook working? try `peninsula doctor`)")

    def run(self, argv: list[str], cwd: str, extra_env: dict, out: Path) -> tuple[float, str]:
        """Run argv in cwd with extra_env added to the shell's environment; (seconds, stdout)."""
        assigns = "".join(f"{k}={shlex.quote(v)} " for k, v in extra_env.items())
        err = out.with_name(out.name + ".err")
        command = (f"cd {shlex.quote(cwd)}; t0=$EPOCHREALTIME; {assigns}{shlex.join(argv)} "
                   f">{shlex.quote(str(out))} 2>{shlex.quote(str(err))}; rc=$?; t1=$EPOCHREALTIME; "
                   f"cd {shlex.quote(str(self.project))}; printf 'PSHELL-%s %s %s %s\\n' DONE $rc $t0 $t1")
        self.seen = b""
        os.write(self.fd, command.encode() + b"\n")
        match = self._read_until(DONE, self.timeout)
        self._read_until(PROMPT.encode(), 30.0)
        rc = int(match[1])
        t0 = int(match[2]) + int(match[3]) / 10 ** len(match[3])
        t1 = int(match[4]) + int(match[5]) / 10 ** len(match[5])
        if rc != 0:
            why = err.read_text(errors="replace") if err.exists() else match.string[:match.start()].decode(errors="replace")
            raise RuntimeError(f"shell session: {shlex.join(argv)} exited {rc}:\n{why[-2000:]}")
        return t1 - t0, out.read_text()

    def close(self) -> str:
        """Exit the shell; return what the pty showed on the way out."""
        tail = b""
        try:
            os.write(self.fd, b"exit\n")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    break
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if ready:
                    try:
                        tail += os.read(self.fd, 65536)
                    except OSError:
                        break
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            while True:  # the supervisor's last words, after the shell itself exited
                ready, _, _ = select.select([self.fd], [], [], 0.5)
                if not ready:
                    break
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                tail += chunk
        finally:
            os.close(self.fd)
        return tail.decode(errors="replace")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", required=True, help="the project to stand in (gets a .peninsula.toml marker if it has none)")
    ap.add_argument("--cwd", help="where CMD runs (default: the project)")
    ap.add_argument("--home", default=None, help="scratch HOME (default: PROJECT/../shell-home)")
    ap.add_argument("--verbose", action="store_true", help="start it as `peninsula shell --verbose` and print its counts")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    project = Path(args.project).resolve()
    home = Path(args.home) if args.home else project.parent / "shell-home"
    session = ShellSession(project, home, dict(os.environ), verbose=args.verbose)
    out = project / ".shell-session.out"  # the shell stands confined to the project: its output goes there
    try:
        elapsed, text = session.run(cmd, args.cwd or str(project), {}, out)
    finally:
        tail = session.close()
    sys.stdout.write(text)
    print(f"elapsed in the shell: {elapsed * 1000:.1f} ms")
    for line in tail.splitlines():
        if line.startswith("peninsula:"):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
