"""A denial notice never suggests allowing a kernel interface (/proc, /sys,
/dev) or the sessions' root: following it would hand out a process's memory,
a kernel knob or a raw device, or a session's files."""

from peninsula.supervisor import hints
from peninsula.config.defaults import session_root

OUTSIDE = "outside every writable root"


def test_hints_skip_kernel_interfaces_and_the_session_root():
    for path in ("/proc/1/mem", "/proc/sys/kernel/core_pattern", "/sys/kernel/mm/ksm/run", "/dev/sda", "/dev/shm/x"):
        assert hints.run_hint(path, OUTSIDE) == "", path
        assert "allow" not in hints.shell_hint(path, OUTSIDE, None), path
    assert hints.run_hint(f"{session_root()}/1-2/state", OUTSIDE) == hints.PROTECTED
    assert hints.shell_hint(f"{session_root()}/1-2/state", OUTSIDE, None) == hints.PROTECTED
    # Positive control: an ordinary path gets its suggestion.
    assert "--write /opt/x" in hints.run_hint("/opt/x", OUTSIDE)
    assert "peninsula allow /opt/x --global" in hints.shell_hint("/opt/x", OUTSIDE, None)


def test_run_notice_for_another_process_memory_offers_nothing(who):
    # A child's memory: the kernel would let its parent open it, so the
    # refusal (and its notice) is the sandbox's.
    script = ("import subprocess, sys\n"
              "child = subprocess.Popen(['sleep', '10'])\n"
              "for path, mode in ((f'/proc/{child.pid}/mem', 'r+b'), (sys.argv[1], 'ab')):\n"
              "    try: open(path, mode)\n"
              "    except OSError as err: print(path, err.strerror)\n"
              "child.kill()\n")
    project = who.mkdir(who.base / "proj")
    hint = who.mkdir(who.base / "outside") / "pt-hint"  # ours, outside the run's writable roots
    result = who.peninsula("run", "--", "/usr/bin/python3", "-c", script, hint, cwd=project)
    lines = [line for line in result.stderr.decode().splitlines() if "peninsula: denied" in line]
    mem = [line for line in lines if "/mem" in line]
    opt = [line for line in lines if str(hint) in line]
    assert mem and opt, (result.stdout, result.stderr)
    assert "--write" not in mem[0] and "allow" not in mem[0], mem
    assert f"--write {hint}" in opt[0], opt  # positive control
