"""Issue 19.2: the seccomp program is never loaded from a place a
sandboxed process of the user can write.

The program used to be cached in ~/.cache/peninsula/filter-*.bpf and
loaded as found: a run that got around the protection of that directory
replaced it with "allow everything", and every later run had no traps.
Here the user plants that program under every name the old cache used;
a confined chmod (which only the seccomp layer stops: Landlock does not
cover it) must still be refused. The control: the same chmod works
without peninsula.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import struct

SECCOMP_RET_ALLOW = 0x7FFF0000
ALLOW_ALL = struct.pack("=HBBI", 0x06, 0, 0, SECCOMP_RET_ALLOW)  # BPF_RET|BPF_K


def old_cache_names(runtime) -> list[str]:
    """The file names the old cache gave the program of the code under test."""
    spec = importlib.util.spec_from_file_location("filtercache_under_test", runtime / "peninsula" / "supervisor" / "filtercache.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [f"filter-{module._key(chdir, names)}.bpf" for chdir in (False, True) for names in (False, True)]


def test_planted_allow_all_program_is_not_loaded(user, runtime):
    cache = user.home / ".cache" / "peninsula"
    planted = []
    for directory in (user.home / ".cache", cache):
        user.mkdir(directory)
    for name in old_cache_names(runtime):
        planted.append(user.write(cache / name, ALLOW_ALL))
    project = user.mkdir(user.base / "proj")
    outside = user.mkdir(user.base / "outside")
    target, control = user.write(outside / "target", "x"), user.write(outside / "control", "x")
    os.chmod(target, 0o644)
    os.chmod(control, 0o644)

    free = user.run(["chmod", "0777", control])
    assert free.returncode == 0 and stat.S_IMODE(os.stat(control).st_mode) == 0o777, free.stderr

    confined = user.peninsula("run", "--project", project, "--log", user.base / "log.jsonl", "--",
                              "chmod", "0777", target, cwd=project)
    assert confined.returncode != 0, "the planted allow-all program was loaded"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
    assert b"denied chmod" in confined.stderr, confined.stderr
    assert all(path.read_bytes() == ALLOW_ALL for path in planted)  # left alone, never read

