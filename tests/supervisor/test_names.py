"""Names that are not UTF-8, and paths at and beyond PATH_MAX."""

import os
import sys

from .conftest import run_twin

BODY = r'''
P, O = os.fsencode(sys.argv[1]), os.fsencode(sys.argv[2])
odd = b"\xff\xfe-caf\xe9-\x01\x7f-\xe2\x82"   # not UTF-8, with control bytes
pd = os.open(P, os.O_RDONLY | os.O_DIRECTORY)
for prefix, D in (("in", P), ("out", O)):
    attempt(prefix + "_open_odd", sc, "open", D + b"/" + odd, os.O_CREAT | os.O_WRONLY, 0o644)
    attempt(prefix + "_mkdir_odd", sc, "mkdir", D + b"/dir" + odd, 0o755)
    attempt(prefix + "_symlink_odd", sc, "symlink", odd, D + b"/link" + odd)
    attempt(prefix + "_rename_odd", sc, "rename", D + b"/old" + odd, D + b"/new" + odd)
    attempt(prefix + "_unlink_odd", sc, "unlink", D + b"/gone" + odd)
    attempt("x_" + prefix + "_chmod_odd", sc, "chmod", D + b"/mode" + odd, 0o600)
attempt("out_odd_dir_inside_name", sc, "open", P + b"/to_out" + odd + b"/x", os.O_CREAT | os.O_WRONLY, 0o644)

# PATH_MAX: 4095 bytes plus the NUL is the longest path the kernel takes
%DEEP%

for prefix, D in (("in", P), ("out", O)):
    d, f = deep(D, 4095)
    assert len(f) == 4095, len(f)
    os.makedirs(d, exist_ok=True)  # mkdir is a write: inside only
    RESULTS["x_" + prefix + "_len"] = len(f)
    attempt(prefix + "_pathmax_open", sc, "open", f, os.O_CREAT | os.O_WRONLY, 0o644)
    if prefix == "in":
        # a name too long for the kernel, from a cwd near PATH_MAX: the
        # supervisor's "where" (cwd + name) is far longer than any path
        os.chdir(d)
        for n in (300, 1000, 3000):
            attempt("err_deep_cwd_open_%d" % n, sc, "open", b"q" * n, os.O_CREAT | os.O_WRONLY, 0o644)
            attempt("err_deep_cwd_mkdir_%d" % n, sc, "mkdir", b"q" * n, 0o755)
            attempt("err_deep_cwd_rename_%d" % n, sc, "rename", b"f" * 100, b"q" * n)
            attempt("err_deep_cwd_link_%d" % n, sc, "link", b"f" * 100, b"q" * n)
        os.chdir(P)
    attempt("err_" + prefix + "_pathmax_plus1", sc, "open", f + b"g", os.O_CREAT | os.O_WRONLY, 0o644)
    attempt("err_" + prefix + "_pathmax_mkdir_plus1", sc, "mkdir", f + b"g", 0o755)
    attempt("x_" + prefix + "_pathmax_chmod", sc, "chmod", d, 0o755)
    attempt("err_" + prefix + "_name_256", sc, "open", D + b"/" + b"n" * 256, os.O_CREAT | os.O_WRONLY, 0o644)
    attempt(prefix + "_name_255", sc, "open", D + b"/" + b"n" * 255, os.O_CREAT | os.O_WRONLY, 0o644)

# a tree deeper than PATH_MAX, reached step by step with relative names
os.chdir(P)
for i in range(25):
    if attempt("in_deeper_mkdir_%d" % i, sc, "mkdir", b"e" * 240, 0o755) != "OK":
        break
    os.chdir(b"e" * 240)
attempt("in_deeper_than_pathmax", sc, "open", b"x", os.O_CREAT | os.O_WRONLY, 0o644)
attempt("in_deeper_mkdir", sc, "mkdir", b"y", 0o755)
done()
'''


def setup(box, project, outside):
    for d in (project, outside):
        for name in (b"old", b"gone", b"mode"):
            path = os.fsencode(d) + b"/" + name + b"\xff\xfe-caf\xe9-\x01\x7f-\xe2\x82"
            with open(path, "wb"):
                pass
            os.chown(path, box.who.uid, box.who.gid)
    link = os.fsencode(project) + b"/to_out\xff\xfe-caf\xe9-\x01\x7f-\xe2\x82"
    os.symlink(os.fsencode(outside), link)
    os.lchown(link, box.who.uid, box.who.gid)


DEEP = '''
def deep(root, total):
    """A directory under root, and a file name in it, of length total."""
    need = total - 101 - len(root)  # the leaf is 100 bytes
    parts = []
    while need > 0:
        k = min(200, need - 1)
        if need - (k + 1) == 1:
            k -= 1
        parts.append(b"d" * k)
        need -= k + 1
    d = root + b"".join(b"/" + p for p in parts)
    return d, d + b"/" + b"f" * 100
'''
exec(DEEP)
BODY = BODY.replace("%DEEP%", DEEP)


def test_odd_and_long_names(box):
    conf, ctl, pair, _ = run_twin(box, BODY, setup_with_deep)
    assert conf["x_in_len"] == 4095
    assert conf["err_in_pathmax_plus1"] == conf["err_out_pathmax_plus1"] == "ENAMETOOLONG"
    assert ctl["x_out_chmod_odd"] == ctl["x_out_pathmax_chmod"] == "OK"
    assert conf["x_out_chmod_odd"] == conf["x_out_pathmax_chmod"] == "EPERM"
    assert conf["x_in_chmod_odd"] == conf["x_in_pathmax_chmod"] == "OK"
    p = os.fsencode(pair.project)
    assert os.path.exists(p + b"/\xff\xfe-caf\xe9-\x01\x7f-\xe2\x82")
    assert os.path.exists(p + b"/new\xff\xfe-caf\xe9-\x01\x7f-\xe2\x82")
    assert os.path.exists(deep(p, 4095)[1])
    # the supervisor survived the odd names, showed them escaped, and the
    # command's own exit status came through
    assert b"denied open of" in conf["_proc"].stderr
    assert b"\\xff\\xfe-caf\\xe9" in conf["_proc"].stderr
    assert conf["_proc"].returncode == 0


def setup_with_deep(box, project, outside):
    setup(box, project, outside)
    for root in (project, outside):
        r = os.fsencode(root)
        d, _ = deep(r, 4095)
        os.makedirs(d, exist_ok=True)
        walk = d
        while walk != r:
            os.chown(walk, box.who.uid, box.who.gid)
            walk = os.path.dirname(walk)
