"""Issue 17 class 1 and the signal case, in a real bash session.

A confined process must not make a new child of the shell (clone with
CLONE_PARENT; clone3, whose flags BPF cannot see, answers ENOSYS and glibc
falls back to clone), and must not signal the shell or a session process
that is laxer than itself, by any route. Each attack has a positive control:
the same program run while the shell is outside the project does it.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from .conftest import supervised

# Raw syscalls from Python, so the route taken is exactly the one named.
TOOL = r'''
import ctypes, errno, fcntl, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def raw(*args):
    rc = libc.syscall(*args)
    return rc if rc >= 0 else -ctypes.get_errno()

def report(name, rc):
    print(f"{name}: " + ("ok" if rc >= 0 else errno.errorcode[-rc]), flush=True)

mode = sys.argv[1]
if mode == "clone-parent":
    # Try for a while, so that some tries fall after the shell has left.
    out, seconds = sys.argv[2], float(sys.argv[3])
    end = time.monotonic() + seconds
    results = set()
    while True:
        pid = raw(56, 0x8000 | signal.SIGCHLD, 0, 0, 0, 0)
        if pid == 0:
            try:
                with open(out, "a") as handle:
                    handle.write(f"ppid={os.getppid()}\n")
            except OSError:
                pass
            os._exit(0)
        results.add("ok" if pid > 0 else errno.errorcode[-pid])
        if time.monotonic() >= end:
            break
        time.sleep(0.05)
    print("clone-parent: " + ",".join(sorted(results)), flush=True)
elif mode == "clone3":
    report("clone3", raw(435, 0, 0))
elif mode == "spawn":
    import subprocess, threading
    t = threading.Thread(target=lambda: open("thread", "w").write("t"))
    t.start(); t.join()
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "echo p > spawned"], dict(os.environ))
    os.waitpid(pid, 0)
    subprocess.run(["sh", "-c", "echo s > subprocess"], check=True)
    print("spawn: done", flush=True)
else:
    pid, sig = int(sys.argv[2]), int(sys.argv[3])
    for mode in mode.split(","):
        if mode == "kill":
            report(mode, raw(62, pid, sig))
        elif mode == "tkill":
            report(mode, raw(200, pid, sig))
        elif mode == "tgkill":
            report(mode, raw(234, pid, pid, sig))
        elif mode == "sigqueue":
            info = (ctypes.c_int * 32)(sig, 0, -1)  # si_signo, si_errno, si_code = SI_QUEUE
            report(mode, raw(129, pid, sig, info))
        elif mode == "tgsigqueue":
            info = (ctypes.c_int * 32)(sig, 0, -1)
            report(mode, raw(297, pid, pid, sig, info))
        elif mode == "pidfd":
            fd = os.pidfd_open(pid)
            report(mode, raw(424, fd, sig, 0, 0))
        elif mode == "setown":
            r, w = os.pipe()
            report(mode, raw(72, r, 8, pid))  # F_SETOWN
        elif mode == "setown-ex":
            r, w = os.pipe()
            owner = (ctypes.c_int * 2)(1, pid)  # F_OWNER_PID
            report(mode, raw(72, r, 15, owner))  # F_SETOWN_EX
        elif mode == "fiosetown":
            import socket
            pair = socket.socketpair()  # sockets take FIOSETOWN
            r = pair[0].fileno()
            value = ctypes.c_int(pid)
            report(mode, raw(16, r, 0x8901, ctypes.byref(value)))
'''

ROUTES = ("kill", "tkill", "tgkill", "sigqueue", "tgsigqueue", "pidfd", "setown", "setown-ex", "fiosetown")
# Routes that deliver a signal now (the SIGIO owner routes only name a receiver).
DELIVERING = ("kill", "tkill", "tgkill", "sigqueue", "tgsigqueue", "pidfd")


@pytest.fixture
def tool(user, home):
    return user.write(home / "tool.py", TOOL)


def _shell_pid(term) -> int:
    text = term.run("echo shellpid=$$")
    return int(re.findall(r"^shellpid=(\d+)", text, re.M)[-1])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_clone_parent_from_a_confined_job_makes_no_unconfined_child(term_factory, home, tool):
    term = term_factory("bash")
    supervised(term)
    shell = _shell_pid(term)
    # Positive control: unconfined, the same program makes a child of the
    # shell, and that child writes outside.
    term.run(f"python3 {tool} clone-parent {home}/out/control 0")
    assert "clone-parent: ok" in term.screen()
    assert (home / "out" / "control").read_text() == f"ppid={shell}\n"
    # The attack: started in the project, it keeps trying after the shell has left.
    term.run("cd proj")
    term.run(f"python3 {tool} clone-parent {home}/out/escaped 2 > clone.log 2>&1 &")
    term.run("cd ..")
    term.prompt()
    time.sleep(2.5)
    term.prompt()
    assert (home / "proj" / "clone.log").read_text() == "clone-parent: EPERM\n"
    assert not (home / "out" / "escaped").exists()


def test_clone3_is_enosys_and_threads_and_spawn_still_work(term_factory, home, tool):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    text = term.run(f"python3 {tool} clone3; python3 {tool} spawn")
    assert "clone3: ENOSYS" in text
    assert "spawn: done" in text
    for name in ("thread", "spawned", "subprocess"):
        assert (home / "proj" / name).exists(), name
    # pthread_create and posix_spawn from C: glibc falls back to clone.
    source = home / "proj" / "t.c"
    source.write_text(
        "#include <pthread.h>\n#include <spawn.h>\n#include <sys/wait.h>\n"
        "extern char **environ;\nstatic void *f(void *a) { return a; }\n"
        "int main(void) { pthread_t t; pid_t p; char *argv[] = {\"true\", 0};\n"
        "  if (pthread_create(&t, 0, f, 0) || pthread_join(t, 0)) return 1;\n"
        "  if (posix_spawn(&p, \"/bin/true\", 0, 0, argv, environ)) return 2;\n"
        "  int st; waitpid(p, &st, 0); return WEXITSTATUS(st); }\n")
    os.chown(source, *_owner(home))
    text = term.run("gcc -pthread -o t t.c && ./t; echo c-status=$?", timeout=60)
    assert "c-status=0" in text


def _owner(home):
    info = os.stat(home)
    return info.st_uid, info.st_gid


def test_confined_process_cannot_signal_the_shell(term_factory, home, tool):
    term = term_factory("bash")
    supervised(term)
    shell = _shell_pid(term)
    winch = int(signal.SIGWINCH)  # harmless to bash: the positive control delivers it
    text = term.run(f"python3 {tool} {','.join(ROUTES)} {shell} {winch}")
    for route in ROUTES:
        assert f"{route}: ok" in text, text[-600:]  # unconfined: allowed
    term.run("cd proj")
    text = term.run(f"python3 {tool} {','.join(ROUTES)} {shell} {int(signal.SIGSTOP)}").rsplit("cd proj", 1)[1]
    for route in ROUTES:
        assert f"{route}: EPERM" in text, text[-600:]
    # Signal 0 only asks whether the shell exists: that stays allowed.
    text = term.run(f"python3 {tool} kill,tgkill,pidfd {shell} 0").rsplit("cd proj", 1)[1]
    assert "kill: ok" in text and "tgkill: ok" in text and "pidfd: ok" in text
    term.run("echo still-here")  # the shell was never stopped


def test_confined_process_cannot_signal_a_laxer_session_process(term_factory, home, tool):
    term = term_factory("bash")
    supervised(term)
    text = term.run("sleep 60 & echo bgpid=$!")
    victim = int(re.findall(r"^bgpid=(\d+)", text, re.M)[-1])
    term.run("cd proj")
    text = term.run(f"python3 {tool} {','.join(DELIVERING)} {victim} {int(signal.SIGKILL)}")
    for route in DELIVERING:
        assert f"{route}: EPERM" in text
    text = term.run(f"sh -c 'kill -KILL {victim}'; /bin/kill -KILL {victim}; echo rc=$?")
    assert "rc=1" in text
    assert _alive(victim)
    # kill(-1) would reach the shell and the unconfined job: refused as a whole.
    text = term.run(f"python3 {tool} kill -1 {int(signal.SIGKILL)}")
    assert "kill: EPERM" in text
    assert _alive(victim)
    # Positive control: once the shell has left, a new command may.
    term.run("cd ..")
    term.run(f"sh -c 'kill -KILL {victim}'")
    deadline = time.monotonic() + 5
    while _alive(victim) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(victim)


def test_signals_inside_one_confined_job_and_job_control_work(term_factory, home, tool):
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    # A confined process signals its own children, its own process group and
    # its children by pidfd.
    text = term.run("sh -c 'sleep 30 & p=$!; kill $p; wait $p; echo child-status=$?'")
    assert "child-status=143" in text
    text = term.run("sh -c 'trap \"echo got-term\" TERM; kill -TERM 0; echo after'")
    assert "got-term" in text and "after" in text
    text = term.run("python3 -c 'import os, signal, subprocess; p = subprocess.Popen([\"sleep\", \"30\"]); "
                    "signal.pidfd_send_signal(os.pidfd_open(p.pid), signal.SIGTERM); print(\"pidfd-status\", p.wait())'")
    assert "pidfd-status -15" in text
    # A process signals itself (kill, raise, pthread_kill: the compiled hot path answers these).
    text = term.run("python3 -c 'import os, signal, threading; signal.signal(signal.SIGUSR1, lambda *a: print(\"self-signal\")); "
                    "os.kill(os.getpid(), signal.SIGUSR1); signal.raise_signal(signal.SIGUSR1); "
                    "signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)'")
    assert len(re.findall(r"^self-signal\s*$", text, re.M)) == 3
    # The shell stops, continues and kills its confined jobs.
    text = term.run("sleep 30 & echo jobpid=$!")
    job = int(re.findall(r"^jobpid=(\d+)", text, re.M)[-1])
    term.run("kill -STOP %1; kill -CONT %1; kill %1; wait %1; echo job-status=$?")
    assert "job-status=143" in term.screen()
    assert not _alive(job)
