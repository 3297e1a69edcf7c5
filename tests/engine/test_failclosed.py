"""Invariant 6: when the supervisor dies, trapped syscalls fail with ENOSYS,
nothing more is written, and `peninsula run` exits 123 and says so."""

import json
import os
import signal
import subprocess
import time

from conftest import SYSTEM_PYTHON

BODY = r'''
import time
P = sys.argv[1]
print("PPID", os.getppid(), flush=True)
# before: the supervisor answers
attempt("before_open", sc, "open", P + "/before", os.O_CREAT | os.O_WRONLY, 0o644)
print("READY", flush=True)
sys.stdin.readline()          # the test kills the supervisor, then says go
deadline = time.monotonic() + 3
i = 0
seen = {}
while time.monotonic() < deadline:
    for name, fn in (
        ("open", lambda: sc("open", P + "/after%d" % i, os.O_CREAT | os.O_WRONLY, 0o644)),
        ("openat_existing", lambda: sc("openat", AT_FDCWD, P + "/before", os.O_WRONLY | os.O_TRUNC)),
        ("mkdir", lambda: sc("mkdir", P + "/dir%d" % i, 0o755)),
        ("unlink", lambda: sc("unlink", P + "/before")),
        ("rename", lambda: sc("rename", P + "/before", P + "/renamed")),
        ("chmod", lambda: sc("chmod", P + "/before", 0o777)),
        ("symlink", lambda: sc("symlink", "x", P + "/sym%d" % i)),
    ):
        try:
            fn()
            seen[name] = "OK"
        except OSError as e:
            seen.setdefault(name, errno.errorcode[e.errno])
    i += 1
    time.sleep(0.01)
RESULTS.update({"after_" + k: v for k, v in seen.items()})
RESULTS["x_rounds"] = i
attempt("read_still_works", lambda: open("/etc/hostname").read())
attempt("stdout_still_works", lambda: sys.stdout.write(""))
done()
'''


def test_supervisor_death_fails_closed(box):
    script = box.script(BODY)
    cmd = box.who.prefix() + [SYSTEM_PYTHON, "-m", "peninsula", "run", "--project", str(box.project),
                              "--log", str(box.log), "--", SYSTEM_PYTHON, str(script), str(box.project)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=box.project, env=box.who.env())
    try:
        ppid = int(proc.stdout.readline().split()[1])
        assert proc.stdout.readline().strip() == b"READY"
        with open(f"/proc/{ppid}/cmdline", "rb") as handle:
            assert b"peninsula" in handle.read()  # the supervisor, not some other parent
        assert (box.project / "before").exists()
        os.kill(ppid, signal.SIGKILL)
        for _ in range(100):
            if not os.path.exists(f"/proc/{ppid}") or open(f"/proc/{ppid}/stat").read().split(") ")[1][0] == "Z":
                break
            time.sleep(0.02)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    line = [l for l in out.decode().splitlines() if l.startswith("RESULT ")]
    assert line, (out, err)
    result = json.loads(line[-1][7:])
    assert result["before_open"] == "OK"
    for op in ("open", "openat_existing", "mkdir", "unlink", "rename", "chmod", "symlink"):
        assert result["after_" + op] == "ENOSYS", (op, result)
    assert result["x_rounds"] > 10
    assert result["read_still_works"] == "OK" and result["stdout_still_works"] == "OK"
    # nothing was written after the kill
    assert sorted(os.listdir(box.project)) == ["before"]
    assert os.stat(box.project / "before").st_mode & 0o777 == 0o644
    assert proc.returncode == 123, (proc.returncode, err)
    assert b"the supervisor died" in err and b"ENOSYS" in err
