"""The shell session's supervisor: judges each process by the shell's state.

See session.py for the process layout and timeline.py for the rules. This
module is imported only in the supervisor process, after the shell has
been started, so its imports cost the shell's start-up nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading

from . import emulate, fastpath, target
from .config import ConfigError
from .project import PROJECT_CONFIGS, Project, find_project, project_configs, project_policy, strict_policy
from .nested import NestedState
from .nested import policy_of as nested_policy
from .resolve import location
from .session import PING_PATH, last_pid, now_tick
from .timeline import STRICT, UNCONFINED, ShellState, Timeline, tighten
from .userconfig import UserConfig, load_user_config

MAX_ANSWERS = 8192
NR_SECCOMP = 317


def make_shell_supervisor(listener_fd, notices, conf: UserConfig, shell_pid: int, session_dir: str, verbose: bool,
                          broker=None, wake_r: int | None = None):
    import select

    from .supervisor import Supervisor

    class _ShellSupervisor(Supervisor):
        def __init__(self):
            super().__init__(listener_fd, None, notices, verbose)
            self.broker = broker
            self.wake_r = wake_r
            if wake_r is not None:
                self.poller.register(wake_r, select.POLLIN)
            self.conf = conf
            self.conf_mtime = _mtime(conf.source)
            self.shell_pid = shell_pid
            self.session_dir = session_dir
            self.extra_protected = (session_dir,)
            self.timeline = Timeline(UNCONFINED, now_tick())
            self.answers: dict[tuple[int, int], ShellState] = {}
            self.policies: dict[ShellState, object] = {}
            self.told: set[str] = set()
            self.known_projects: set[str] = set()  # once a project, always, this session
            # The head of each nested run (nested.py) -> its command's state;
            # each nested command -> its tally.
            self.nest_heads: dict[tuple[int, int], NestedState] = {}
            self.nests: dict = {}
            self.lock = threading.Lock()
            for name in ("chdir", "fchdir"):
                from .seccomp import syscall_number

                self.handlers[syscall_number(name)] = getattr(self, f"h_{name}")
            # The compiled hot path asks self.judge which policy a process is
            # under; it must not wait for requests on one listener alone.
            self.fast = fastpath.engine_judged_by(self.judge)
            self.fast_blocks = False
            self.fast_slots: dict[ShellState, int] = {}
            self.prompt_ping()

        def on_event(self, fd: int, mask: int) -> None:
            if fd == self.wake_r:
                # A command joined the session (join.py): serve its listener too.
                os.read(fd, 4096)
                while not self.broker.pending.empty():
                    self.add_listener(self.broker.pending.get())
                return
            super().on_event(fd, mask)

        # -- judgement -------------------------------------------------------

        def state_of(self, tgid: int) -> ShellState:
            if tgid == self.shell_pid:
                return self.timeline.current
            chain: list[tuple[int, int]] = []
            pid = tgid
            state = STRICT
            while True:
                try:
                    key = (pid, target.start_time(pid))
                except (OSError, ValueError, IndexError):
                    break  # vanished mid-walk: strictest
                if chain and key in self.nest_heads:
                    # A nested run's head forks only its command: any other child
                    # is an orphan of the command's tree (or made with CLONE_PARENT).
                    state = self.nest_heads[key]
                    break
                known = self.answers.get(key)
                if known is not None:
                    state = known
                    break
                chain.append(key)
                parent = target.parent_of(pid)
                if parent == self.shell_pid:
                    state = self.timeline.at(key[1], pid)
                    break
                if parent <= 1:
                    break  # reparented away from its line and never seen: strictest
                pid = parent
            for key in chain:
                self.answers[key] = state
            if len(self.answers) > MAX_ANSWERS:
                self._prune()
            return state

        def judge(self, tid: int) -> tuple[int, int]:
            """For the compiled hot path: (policy slot, tgid) of a thread's
            process, -1 when it is not confined, -2 for Python to handle
            (the shell itself, a vanished thread)."""
            with self.lock:
                try:
                    tgid = target.Status(tid).tgid
                except (OSError, KeyError, ValueError):
                    return -2, 0
                if tgid == self.shell_pid:
                    return -2, tgid  # its prompt pings and cd are Python's
                state = self.state_of(tgid)
                pol = self.policy_for(state)
                if pol is None:
                    return -1, tgid
                if isinstance(state, NestedState):
                    return -2, tgid  # Both() is Python's: the C engine knows one policy per process
                slot = self.fast_slots.get(state)
                if slot is None:
                    slot = self.fast_slots[state] = self.fast.add_policy(**fastpath.spec(pol))
                return slot, tgid

        def _policies_changed(self) -> None:
            """Config, project configs or trust may have changed: compile again."""
            self.policies.clear()
            if self.fast is not None:
                self.fast.reset()
                self.fast_slots.clear()

        def _prune(self) -> None:
            for key in list(self.answers):
                try:
                    alive = target.start_time(key[0]) == key[1]
                except (OSError, ValueError, IndexError):
                    alive = False
                if not alive:
                    del self.answers[key]

        def policy_for(self, state: ShellState):
            if isinstance(state, NestedState):
                return nested_policy(self, state)
            if not state.confined:
                return None
            pol = self.policies.get(state)
            if pol is None:
                if state.strict:
                    pol = strict_policy(self.conf, self.extra_protected)
                else:
                    pol, notices = project_policy(Project(state.project, ""), self.conf, self.extra_protected)
                    # Said again after each change of the project's config files.
                    edition = tuple(_mtime(os.path.join(state.project, rel)) for rel in PROJECT_CONFIGS)
                    for line in notices:
                        self.tell(line, edition)
                self.policies[state] = pol
            return pol

        def dispatch(self, req, handler):
            with self.lock:
                if req.tgid == self.shell_pid and req.nr in self.open_numbers:
                    if self._is_ping(req):
                        self.prompt_ping()
                        return emulate.Fd(os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC), True)
                if handler in (self.h_chdir, self.h_fchdir) or req.nr == NR_SECCOMP:
                    return handler(req)  # chdir: the shell's state; seccomp: a notice, for anyone
                pol = self.policy_for(self.state_of(req.tgid))
                if pol is None:
                    return emulate.CONTINUE  # not confined: no restriction bears
                self.policy = pol
                return handler(req)

        open_numbers = frozenset((2, 257, 85))  # open, openat, creat

        def _is_ping(self, req) -> bool:
            index = 1 if req.nr == 257 else 0
            try:
                return req.path(index) == PING_PATH
            except OSError:
                return False

        # -- the shell's state -------------------------------------------------

        def _enter(self, req, pinned: int) -> None:
            where = location(pinned)
            project = self.find(where)
            root = project.root if project else None
            if req.tgid == self.shell_pid:
                self.timeline.record(now_tick(), tighten(self.timeline.current, root), last_pid())
                self.write_state()
                return
            if root is None:
                return
            # Any other process that walks into a project is confined to it
            # from now on, and so is everything it starts.
            current = self.state_of(req.tgid)
            if not current.confined:
                self.answers[(req.tgid, target.start_time(req.tgid))] = ShellState(root)
                if self.fast is not None:
                    self.fast.forget(req.tgid)  # judged unconfined until now

        def h_chdir(self, req):
            if req.tgid != self.shell_pid and self.state_of(req.tgid).confined:
                return emulate.CONTINUE
            with contextlib.suppress(OSError):
                self._enter(req, req.pin(-100, req.path(0), follow=True))
            return emulate.CONTINUE  # changing directory writes nothing

        def h_fchdir(self, req):
            if req.tgid != self.shell_pid and self.state_of(req.tgid).confined:
                return emulate.CONTINUE
            with contextlib.suppress(OSError):
                self._enter(req, req.fd_object(req.dirfd(0)))
            return emulate.CONTINUE

        def prompt_ping(self) -> None:
            """The shell is at its prompt: read the facts and set its state."""
            self.reload_config()
            self._policies_changed()  # project configs and trust may have changed
            try:
                cwd = os.readlink(f"/proc/{self.shell_pid}/cwd")
            except OSError:
                return
            project = self.find(cwd)
            state = ShellState(project.root) if project else UNCONFINED
            self.timeline.record(now_tick(), state, last_pid())
            if project is not None:
                self.policy_for(state)  # says once if its config is untrusted
            self.write_state(project)

        def find(self, where: str) -> Project | None:
            if not where.startswith("/"):
                return None
            project = find_project(where, self.conf, self.known_projects)
            if project is not None:
                self.known_projects.add(project.root)
            return project

        def reload_config(self) -> None:
            path = self.conf.source or _user_config_path()
            mtime = _mtime(path)
            if mtime == self.conf_mtime:
                return
            self.conf_mtime = mtime
            try:
                self.conf = load_user_config(path)
            except ConfigError as err:
                self.tell(f"{err} (keeping the previous configuration)")
                return
            self._policies_changed()

        def write_state(self, project: Project | None = None) -> None:
            state = self.timeline.current
            if state.strict:
                text = "strict\n"
            elif state.project:
                text = f"{os.path.basename(state.project)}\t{state.project}\n"
            else:
                text = "\n"
            path = os.path.join(self.session_dir, "state")
            with contextlib.suppress(OSError):
                with open(path + ".new", "w") as handle:
                    handle.write(text)
                os.rename(path + ".new", path)

        def tell(self, line: str, edition=None) -> None:
            if (line, edition) in self.told:
                return
            self.told.add((line, edition))
            self.notices._say(f"peninsula: {line}")

        # -- control channel -------------------------------------------------------

        def describe(self, pid: int | None) -> dict:
            from .join import caller_state

            state = self.timeline.current if pid is None else caller_state(self, pid)
            with self.lock:
                pol = self.policy_for(state)
            return {
                "session": os.path.basename(self.session_dir),
                "shell_pid": self.shell_pid,
                "shell_state": self.timeline.current.describe(),
                "shell_project": self.timeline.current.project,
                "caller_state": state.describe(),
                "confined": state.confined,
                "project": state.project,
                "writable": list(pol.writable) if pol else None,
                "protected": list(pol.protected) if pol else None,
                "project_configs": _config_states(state.project or self.timeline.current.project),
                "requests": self.requests,
                "compiled_requests": self.fast.counts()[0] if self.fast is not None else None,
            }

        def check(self, pid: int | None, path: str) -> dict:
            from . import policy as engine

            from .join import caller_state

            state = self.timeline.current if pid is None else caller_state(self, pid)
            with self.lock:
                pol = self.policy_for(state)
            if pol is None:
                return {"allow": True, "reason": "not confined: " + state.describe()}
            decision = engine.decide_write(pol, path)
            return {"allow": decision.allow, "reason": decision.reason}

    return _ShellSupervisor()


def _config_states(root: str | None) -> list[dict] | None:
    """The project's config files and whether each is trusted (for status)."""
    if root is None:
        return None
    configs, errors = project_configs(root)
    broken = {e.split(":", 1)[0] for e in errors}
    return ([{"path": c.path, "trusted": c.trusted} for c in configs if c.path not in broken]
            + [{"path": e.split(":", 1)[0], "trusted": False, "error": e} for e in errors])


def _mtime(path: str | None):
    if not path:
        return None
    try:
        info = os.stat(path)
        return (info.st_mtime_ns, info.st_size, info.st_ino)
    except OSError:
        return None


def _user_config_path() -> str:
    from .userconfig import config_path

    return config_path()
