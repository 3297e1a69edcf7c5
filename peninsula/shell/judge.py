"""The shell session's supervisor: judges each process by the shell's state.

See session.py for the process layout and timeline.py for the rules. This
module is imported only in the supervisor process, after the shell has
been started, so its imports cost the shell's start-up nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading

from peninsula.config import defaults, socketdirs
from peninsula.supervisor.handlers import request
from peninsula.supervisor import fastpath, table
from peninsula.supervisor.handlers import lineage
from peninsula.kernel import target
from peninsula.config.options import ConfigError
from peninsula.config.project import PROJECT_CONFIGS, Project, find_project, project_configs, project_policy, strict_policy
from peninsula.supervisor.nesting import NestedState
from peninsula.supervisor.nesting import policy_of as nested_policy
from peninsula.kernel.resolve import location
from peninsula.kernel.target import last_pid, now_tick
from peninsula.policy.engine import is_beneath
from peninsula.shell.roots import HeldRoots
from peninsula.policy.timeline import ORPHAN, UNCONFINED, ShellState, Timeline, stricter, tighten
from peninsula.config.user import UserConfig, load_user_config

MAX_ANSWERS = 8192
MAX_TAGGED = 64
IOCTL = 16
NR_SECCOMP = 317
PING_PATH = b"/dev/null/.peninsula-prompt"  # never exists: only the supervisor answers it


def make_shell_supervisor(listener_fd, notices, conf: UserConfig, shell_pid: int, session_dir: str, verbose: bool,
                          broker=None, wake_r: int | None = None):
    import select

    from peninsula.supervisor.loop import Supervisor

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
            self.session_top = os.getppid()  # `peninsula shell`, the subreaper of the session's orphans
            self.session_dir = session_dir
            # The whole session root: a confined process that renamed or
            # replaced it (or any session in it) would aim the supervisors'
            # writes and the hooks' reads at its own files.
            self.extra_protected = (os.path.dirname(session_dir),)
            self.session_fd: int | None = None
            self.timeline = Timeline(UNCONFINED, now_tick())
            self.answers: dict[tuple[int, int], ShellState] = {}
            self.policies: dict[ShellState, object] = {}
            self.told: set[str] = set()
            self.known_projects: set[str] = set()  # once a project, always, this session
            self.project_roots = HeldRoots()  # ...and known by what it is (roots.py)
            self.prompt_cwd: tuple[int, int] | None = None  # (dev, ino) of the shell's directory at its last prompt
            self.control_allowed = False
            from peninsula.supervisor.handlers.allowlist import user_allowlist

            # The user's allow_socket, found now like the shipped list: a
            # confined process cannot have renamed anything yet.
            for entry in user_allowlist(conf.allow_socket, "allow_socket in " + (conf.source or _user_config_path())):
                self.sockets.add(*entry)
            self.socket_hint = 'allow_socket = ["{path}"] in ' + (conf.source or _user_config_path()) + " (new sessions)"
            from peninsula.supervisor.handlers.allowlist import shipped_ports

            self.loopback_ports = shipped_ports(conf.allow_loopback, "allow_loopback in " + (conf.source or _user_config_path()))
            self.loopback_hint = "allow_loopback = [{port}] in " + (conf.source or _user_config_path()) + " (new sessions)"
            # Names the caller of a control connection this supervisor made
            # for a confined process (its SO_PEERCRED is ours): secret.
            # os.urandom is what secrets.token_hex reads; importing secrets
            # loads hmac and OpenSSL, ~3 ms of every shell start.
            self.control_token = os.urandom(16).hex().encode()
            self.tagged_callers: dict[bytes, int] = {}  # nonce -> pidfd of the caller (sockets._Tag)
            self.tagged_lock = threading.Lock()
            # The head of each nested run (nested.py) -> its command's state;
            # each nested command -> its tally.
            self.nest_heads: dict[tuple[int, int], NestedState] = {}
            self.nests: dict = {}
            self.lock = threading.Lock()
            # Making and signalling processes: judged by lineage.py, never
            # under a file policy. chdir, fchdir and the mount API: this
            # judge's own methods (the syscall table's rows say which).
            self.lineage = table.lineage_handlers(self)
            self.handlers.update(self.lineage)
            self.handlers.update(table.judge_handlers(self))
            # The compiled hot path asks self.judge which policy a process is
            # under; it must not wait for requests on one listener alone.
            self.fast = fastpath.engine_judged_by(self.judge)
            self.fast_blocks = False
            self.fast_slots: dict[ShellState, int] = {}
            self.prompt_ping()
            from peninsula.shell.exec_guard import ExecGuard

            # After prompt_ping: the state it set is the first mark. The shell has exec'd (session.py waits).
            self.exec_guard = ExecGuard(shell_pid, self.timeline, self.tell, notices)

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
            state = ORPHAN
            while True:
                try:
                    key = (pid, target.start_time(pid))
                except (OSError, ValueError, IndexError):
                    break  # vanished mid-walk: the line broke before it was seen, an orphan
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
                    break  # reparented away from its line and never seen: an orphan (strict)
                pid = parent
            for key in chain:
                self.answers[key] = state
            if len(self.answers) > MAX_ANSWERS:
                self._prune()
            return state

        def judge_children(self, tgid: int) -> None:
            """tgid is exiting: judge its children now (state_of keeps the
            answers), while their line still leads through it. Called
            from dispatch, under the lock."""
            for child in target.children(tgid):
                self.state_of(child)

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

        def listener_inside(self, caller_tgid: int, pid: int) -> bool:
            """A socket's listener is in the caller's confinement when its line
            leads to the shell and the timeline judges it confined as
            strictly (its project, or strict). A line that cannot be traced
            is outside: the opposite of judging a caller."""
            if not (target.descends_from(pid, self.shell_pid) or self._session_orphan(pid)):
                return False
            mine, theirs = self.state_of(caller_tgid), self.state_of(pid)
            return theirs.confined and (theirs.strict or theirs == mine)

        def confinement_of(self, tgid: int):
            return self.state_of(tgid)

        def confinement_covers(self, caller_tgid: int, confinement) -> bool:
            """As listener_inside, for the state the listening process had."""
            return confinement.confined and (confinement.strict or confinement == self.state_of(caller_tgid))

        def supervises(self, pid: int) -> bool:
            """pid is beneath the shell or one of our own processes (nesting.py)."""
            from peninsula.shell.callers import descends_from

            return descends_from(pid, {self.shell_pid, *self.own_pids})

        def _session_orphan(self, pid: int) -> bool:
            """A process of this session whose line broke (a daemon such as a
            tmux server started in a project: orphans go to our parent, the
            subreaper) or a joined command: it is under a seccomp filter, so
            it is ours, and state_of judges it as it judges its writes (the
            strictest answer when its line was never seen)."""
            return target.filtered(pid) and target.descends_from(pid, self.session_top)

        def socket_allowlist(self):
            # The control socket (status, check, exec) judges its callers
            # itself; it is bound after this supervisor starts.
            if not self.control_allowed:
                self.control_allowed = True
                self.sockets.add("peninsula", os.path.join(self.session_dir, "control.sock"),
                                 "this session's control socket: it judges each caller itself")
            return self.sockets

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
                        if self.exec_guard.ping_may_lift(req.tid):  # still the shell's program (exec_guard.py)
                            self.prompt_ping()
                            self.exec_guard.lifted()
                        return request.Fd(os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC), True)
                if handler in (self.h_chdir, self.h_fchdir) or req.nr == NR_SECCOMP:
                    # chdir: the shell's state; seccomp: a notice, for anyone
                    return handler(req)
                if req.nr in self.lineage:
                    return handler(req)
                if req.nr == IOCTL and req.args[1] & 0xFFFFFFFF in lineage.OWNER_IOCTLS:
                    return lineage.h_owner_ioctl(self, req)
                pol = self.policy_for(self.state_of(req.tgid))
                if pol is None:
                    return request.CONTINUE  # not confined: no restriction bears
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
            project = self.find(where) or self._held_project(pinned)
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
                entered = ShellState(root)
                self.answers[(req.tgid, target.start_time(req.tgid))] = entered
                if self.fast is not None:
                    self.fast.forget(req.tgid)  # judged unconfined until now
                # Its children judged before now are its to steer (memory
                # they share, a CLONE_VM child): they are confined with it.
                # One not judged yet finds this answer on its line.
                for key in target.descendants(req.tgid):
                    known = self.answers.get(key)
                    if known is not None:
                        self.answers[key] = stricter(known, entered)
                        if self.fast is not None:
                            self.fast.forget(key[0])

        def h_chdir(self, req):
            if req.tgid != self.shell_pid and self.state_of(req.tgid).confined:
                return request.CONTINUE
            with contextlib.suppress(OSError), self._unreadable_goes_on(req):
                self._enter(req, req.pin(-100, req.path(0), follow=True))
            return request.CONTINUE  # changing directory writes nothing

        def h_fchdir(self, req):
            if req.tgid != self.shell_pid and self.state_of(req.tgid).confined:
                return request.CONTINUE
            with contextlib.suppress(OSError), self._unreadable_goes_on(req):
                self._enter(req, req.fd_object(req.dirfd(0)))
            return request.CONTINUE

        @contextlib.contextmanager
        def _unreadable_goes_on(self, req):
            """An unconfined process that made itself non-dumpable (ssh-agent
            and gpg-agent, which chdir("/") as daemons) keeps its directory
            from a supervisor that is not root: where it goes cannot be
            read, so it is not confined by walking into a project (README's
            limits). The shell's own cd is refused then, as before."""
            try:
                yield
            except request.Denied:
                if req.tgid == self.shell_pid:
                    raise

        def h_mount_call(self, req):
            """Reached only for a confined caller (dispatch lets the others
            go on): the mount API is not for confined processes."""
            raise OSError(errno.EPERM, "the mount API is refused to confined processes")

        def prompt_ping(self) -> None:
            """The shell is at its prompt: read the facts and set its state."""
            self.reload_config()
            self._policies_changed()  # project configs and trust may have changed
            try:
                project, cwd_key = self._shell_project()
            except OSError:
                return
            state = ShellState(project.root) if project else UNCONFINED
            current = self.timeline.current
            if current.confined and state != current and cwd_key == self.prompt_cwd:
                # The shell is in the directory it was in at its last prompt,
                # judged confined then: the directory was moved, or its
                # project's markers changed, under it. Only the shell's own
                # cd lifts.
                state = stricter(current, state)
                self.tell(f"the shell's directory is no longer inside {current.project or 'its project'}; "
                          "it stays confined until you change directory")
            self.prompt_cwd = cwd_key
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
                self.project_roots.hold(project.root)
            return project

        def guarded_directories(self) -> set[tuple[int, int]]:
            """(dev, ino) of the directories a confined process may not move,
            replace or remove (names._refuse_moving_a_root): the project
            roots and every directory above one; and, while the shell is
            confined, the directory it is in and those above (moved out of
            the project, a later `cd sub` would land outside)."""
            guarded = self.project_roots.guarded()
            if self.timeline.current.confined:
                with contextlib.suppress(OSError):
                    fd = os.open(f"/proc/{self.shell_pid}/cwd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                    try:
                        guarded |= self.project_roots.above(fd)
                    finally:
                        os.close(fd)
            return guarded

        def _held_project(self, fd: int) -> Project | None:
            """The innermost held project root at or above the directory fd."""
            key = self.project_roots.containing(fd)
            where = self.project_roots.path_of(key) if key is not None else None
            return Project(where, "recognised earlier in this session") if where else None

        def _shell_project(self) -> tuple[Project | None, tuple[int, int]]:
            """The project of the directory the shell is in, by that directory:
            the held roots above it, and the markers on its path when that
            path still names it (a new project); and that directory's (dev, ino)."""
            fd = os.open(f"/proc/{self.shell_pid}/cwd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                here = os.fstat(fd)
                held = self._held_project(fd)
                by_path = None
                cwd = os.readlink(f"/proc/{self.shell_pid}/cwd")
                with contextlib.suppress(OSError):
                    there = os.stat(cwd)
                    if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino):
                        by_path = self.find(cwd)
            finally:
                os.close(fd)
            key = (here.st_dev, here.st_ino)
            if by_path is not None and held is not None and not is_beneath(by_path.root, held.root):
                return held, key  # the path names a project outside the one the directory is in
            return by_path or held, key

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
            from peninsula.shell.sessiondir import write_file

            if self.session_fd is None:
                return
            with contextlib.suppress(OSError):
                # The project's tool caches, for the hook to export (NAME=VALUE
                # lines); written before the state that makes the hook read it.
                caches = (defaults.cache_env(state.project) + socketdirs.socket_env(state.project)
                          if state.project and not state.strict else ())
                write_file(self.session_fd, "caches", "".join(f"{name}={value}\n" for name, value in caches))
                write_file(self.session_fd, "state", text)

        def tag_caller(self, pidfd: int) -> bytes:
            """Keep pidfd of a confined caller whose control connection this
            supervisor made, under a fresh nonce the connection will carry."""
            nonce = os.urandom(16).hex().encode()
            with self.tagged_lock:
                while len(self.tagged_callers) >= MAX_TAGGED:  # never collected: the oldest go
                    os.close(self.tagged_callers.pop(next(iter(self.tagged_callers))))
                self.tagged_callers[nonce] = pidfd
            return nonce

        def collect_tagged_caller(self, nonce: bytes) -> int | None:
            with self.tagged_lock:
                return self.tagged_callers.pop(nonce, None)

        def tell(self, line: str, edition=None) -> None:
            if (line, edition) in self.told:
                return
            self.told.add((line, edition))
            self.notices._say(f"peninsula: {line}")

        # -- control channel -------------------------------------------------------

        def describe(self, state: ShellState) -> dict:
            """The session as a caller judged state sees it."""
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
                "sockets": self.socket_allowlist().describe(),
                "loopback_ports": [{"port": port, "reason": why} for port, why in sorted(self.loopback_ports.items())],
                "requests": self.requests,
                "compiled_requests": self.fast.counts()[0] if self.fast is not None else None,
            }

        def check(self, state: ShellState, path: str) -> dict:
            from peninsula.policy import engine

            with self.lock:
                pol = self.policy_for(state)
            if pol is None:
                return {"allow": True, "reason": "not confined: " + state.describe()}
            decision = engine.decide_write(pol, path)
            return {"allow": decision.allow, "reason": decision.reason}

        def check_connect(self, state: ShellState, path: str) -> dict:
            """Would a connect to the socket at path pass for a caller judged
            state? Judged as a confined connect is: the inode against the
            allow-list, else the listener (a probe of ours connects to it;
            the listener sees a connection close unused), compared with the
            shell's own line (where `peninsula check` runs)."""
            from peninsula.supervisor.handlers.sockets import explain_socket

            if not state.confined:
                return {"allow": True, "reason": "not confined: " + state.describe()}
            return explain_socket(self, self.shell_pid, path, locked=True)

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
    from peninsula.config.user import config_path

    return config_path()

