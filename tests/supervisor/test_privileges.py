"""Nothing made in the sandbox may run later, outside it, with more rights
than its caller: no set-user-ID or set-group-ID programs, no file
capabilities (a confined root could otherwise leave a root shell in /tmp
for anyone). Ordinary modes and set-group-ID directories still work."""

import os
import stat

from .conftest import run_twin

BODY = r'''
P, O = sys.argv[1], sys.argv[2]
os.umask(0o022)
capv = ctypes.create_string_buffer(bytes.fromhex("0000000200000000000000000000000000000000"), 20)  # v2, no caps
attempt("x_chmod_setuid", sc, "chmod", P + "/prog", 0o4755)
attempt("x_chmod_setgid_exec", sc, "chmod", P + "/prog", 0o2755)
attempt("x_fchmod_setuid", lambda: sc("fchmod", os.open(P + "/prog", os.O_RDONLY), 0o4711))
attempt("x_fchmodat_setuid_tmp", sc, "fchmodat", AT_FDCWD, "/tmp/" + os.path.basename(P) + "-prog", 0o4755)
attempt("x_open_creat_setuid", sc, "open", P + "/born_setuid", os.O_CREAT | os.O_WRONLY, 0o4755)
attempt("x_mknod_setuid", sc, "mknod", P + "/node_setuid", stat.S_IFREG | 0o4755, 0)
attempt("x_setcap", sc, "setxattr", P + "/prog", "security.capability", capv, 20, 0)
attempt("in_chmod_plain", sc, "chmod", P + "/prog", 0o751)
attempt("in_chmod_setgid_dir", sc, "chmod", P + "/shared", 0o2775)
attempt("in_mkdir_setgid", sc, "mkdir", P + "/sgdir", 0o2755)
attempt("in_chmod_setgid_noexec", sc, "chmod", P + "/lockfile", 0o2644)
attempt("in_chmod_sticky_dir", sc, "chmod", P + "/shared", 0o1777)
attempt("in_creat_plain", sc, "open", P + "/plain", os.O_CREAT | os.O_WRONLY, 0o755)
done()
'''


def setup(box, project, outside):
    box.file(project / "prog", "#!/bin/sh\n", 0o755)
    box.file(project / "lockfile", "", 0o644)
    box.dir(project / "shared")
    tmp = f"/tmp/{project.name}-prog"
    with open(tmp, "w") as handle:
        handle.write("#!/bin/sh\n")
    os.chown(tmp, box.who.uid, box.who.gid)


def test_no_privileged_programs(box):
    try:
        conf, ctl, pair, _ = run_twin(box, BODY, setup)
    finally:
        for name in ("proj", "ctl-proj"):
            if os.path.exists(f"/tmp/{name}-prog"):
                os.unlink(f"/tmp/{name}-prog")
    for key in ("x_chmod_setuid", "x_chmod_setgid_exec", "x_fchmod_setuid", "x_fchmodat_setuid_tmp",
                "x_open_creat_setuid", "x_mknod_setuid"):
        assert ctl[key] == "OK", (key, ctl[key])
        assert conf[key] == "EPERM", (key, conf[key])
    assert ctl["x_setcap"] == ("OK" if box.who.is_root else "EPERM")
    assert conf["x_setcap"] == "EPERM"
    p = pair.project
    assert stat.S_IMODE(os.stat(p / "prog").st_mode) == 0o751
    assert not os.path.exists(p / "born_setuid") and not os.path.exists(p / "node_setuid")
    assert "security.capability" not in os.listxattr(p / "prog")
    assert stat.S_IMODE(os.stat(p / "shared").st_mode) == 0o1777
