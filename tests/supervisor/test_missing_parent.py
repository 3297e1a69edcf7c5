"""A create or mkdir whose parent does not exist (git's first object in each
objects/xx): the kernel says ENOENT before any permission or Landlock check,
and the compiled path now says it too instead of handing it to Python
(issue 15). It may only when its walk crossed no symlink: a symlink can mean
another thing to the target than to the supervisor (/dev/fd/N is the
target's fd N, which the supervisor does not have), so such a walk is still
Python's, and the target gets what the kernel gives it.

Each probe runs confined and, as the control, unconfined in a twin
directory: the results must be the same, and the expected ones.
"""

from __future__ import annotations

import re

BODY = r'''
work = sys.argv[1]
os.chdir(work)
os.mkdir("real")  # the positive control: creating where the parent exists works
fd = os.open("real", os.O_RDONLY | os.O_DIRECTORY)
os.dup2(fd, 300)  # a number the supervisor does not hold
os.symlink("/dev/fd/300", "fdlink")
os.symlink("real", "reallink")
W = os.O_WRONLY | os.O_CREAT
attempt("open_excl", sc, "open", "missing/x", W | os.O_EXCL, 0o644)
attempt("open_creat", sc, "openat", AT_FDCWD, "missing/deeper/x", W, 0o644)
attempt("open_abs", sc, "open", work + "/missing/x", W | os.O_EXCL, 0o644)
attempt("open_dirfd", sc, "openat", fd, "missing/x", W | os.O_EXCL, 0o644)
attempt("mkdir", sc, "mkdir", "missing/x", 0o755)
attempt("mkdirat", sc, "mkdirat", fd, "missing/x", 0o755)
attempt("open_existing_parent", sc, "open", "real/x", W | os.O_EXCL, 0o644)
attempt("mkdir_existing_parent", sc, "mkdir", "real/d", 0o755)
attempt("via_symlink_missing", sc, "open", "reallink/missing/x", W | os.O_EXCL, 0o644)
# The supervisor's /dev/fd/300 does not exist, the target's is "real".
attempt("via_fd_link", sc, "open", "fdlink/y", W | os.O_EXCL, 0o644)
attempt("mkdir_via_fd_link", sc, "mkdir", "fdlink/e", 0o755)
attempt("via_fd_link_missing", sc, "open", "fdlink/missing/x", W | os.O_EXCL, 0o644)
for i in range(40):
    attempt("again", sc, "open", f"missing{i}/x", W | os.O_EXCL, 0o644)
done(made=sorted(os.listdir("real")))
'''

EXPECTED = {
    "open_excl": "ENOENT", "open_creat": "ENOENT", "open_abs": "ENOENT", "open_dirfd": "ENOENT",
    "mkdir": "ENOENT", "mkdirat": "ENOENT", "open_existing_parent": "OK", "mkdir_existing_parent": "OK",
    "via_symlink_missing": "ENOENT", "via_fd_link": "OK", "mkdir_via_fd_link": "OK",
    "via_fd_link_missing": "ENOENT", "again": "ENOENT", "made": ["d", "e", "x", "y"],
}


def _results(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def test_missing_parent_gives_the_kernels_enoent(box, hot_path):
    confined_dir = box.dir(box.project / "confined")
    control_dir = box.dir(box.project / "control")
    control = box.probe(BODY, control_dir, confined=False)
    assert _results(control) == EXPECTED  # what the kernel gives, unconfined
    confined = box.probe(BODY, confined_dir, options=("--verbose",))
    assert _results(confined) == EXPECTED
    stderr = confined["_proc"].stderr.decode("utf-8", "replace")
    counts = re.search(r"(\d+) requests answered by the compiled hot path, (\d+) by Python", stderr)
    assert counts, stderr
    compiled, python = int(counts[1]), int(counts[2])
    if hot_path == "compiled":
        # 45 missing parents reached without a symlink and the 3 plain
        # creates are the compiled path's; the walks through a symlink (3),
        # the symlinks (2) and the mkdir through fdlink are Python's.
        assert compiled >= 45 + 3, stderr
        assert python <= 10, stderr
    else:
        assert compiled == 0 and python >= 50, stderr
