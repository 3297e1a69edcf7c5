"""Issues 19.3 and 19.4: a root supervisor acts with exactly the target's
identity and capabilities, as the kernel would judge the target.

19.3: the compiled path remembered a thread's identity while its pidfd
lived; a non-leader thread that dropped to another uid and called execve
took over the leader's tid, and the leader's root identity was reused.
19.4: a root target that dropped every capability was served with all of
the supervisor's. Root, both hot paths; the control is the same program
without peninsula, which gets the kernel's own answer.
"""

from __future__ import annotations

import os

import pytest

EXEC_FROM_THREAD = r'''
import threading, time
P, uid = sys.argv[1], int(sys.argv[2])
NR["setresuid"] = 117
# a trapped write as root first: the leader's identity is seen (and was remembered)
attempt("root_append", lambda: os.close(os.open(P + "/rootfile", os.O_WRONLY | os.O_APPEND)))
CHILD = """
import errno, json, os
try:
    os.close(os.open(%r + "/rootfile", os.O_WRONLY | os.O_APPEND))
    got = "OK"
except OSError as e:
    got = errno.errorcode[e.errno]
print("RESULT " + json.dumps({"root_append": %r, "after_exec_append": got, "uid": os.getuid()}), flush=True)
"""
def thread():
    sc("setresuid", uid, uid, uid)  # this thread only (raw syscall)
    os.execv("/usr/bin/python3", ["python3", "-c", CHILD % (P, RESULTS["root_append"])])
threading.Thread(target=thread).start()
time.sleep(30)
'''


def test_identity_after_a_thread_execs(root_box, user):
    box = root_box
    rootfile = box.project / "rootfile"
    rootfile.write_text("root's\n")
    os.chmod(rootfile, 0o644)
    control = box.probe(EXEC_FROM_THREAD, box.project, user.uid, confined=False)
    confined = box.probe(EXEC_FROM_THREAD, box.project, user.uid)
    assert control["uid"] == confined["uid"] == user.uid
    assert control["root_append"] == confined["root_append"] == "OK"
    assert control["after_exec_append"] == "EACCES"
    assert confined["after_exec_append"] == "EACCES", confined


CAPS_PROBE = r'''
P, uid = sys.argv[1], int(sys.argv[2])
attempt("append_their_0600", lambda: os.close(os.open(P + "/theirs", os.O_WRONLY | os.O_APPEND)))
attempt("chmod_theirs", os.chmod, P + "/theirs", 0o644)
attempt("chown_theirs", os.chown, P + "/theirs", 0, 0)
attempt("chown_own", os.chown, P + "/own", uid, -1)
attempt("create_own", lambda: os.close(os.open(P + "/new", os.O_WRONLY | os.O_CREAT, 0o644)))
done(caps=open("/proc/self/status").read().split("CapEff:")[1].split()[0])
'''

NO_CAPS = ("setpriv", "--bounding-set=-all", "--inh-caps=-all", "--")


@pytest.mark.parametrize("dropped", [True, False], ids=["no-capabilities", "all-capabilities"])
def test_root_without_capabilities(root_box, user, dropped):
    """With no capabilities a root process is refused another user's 0600
    file and its chown and chmod; with them, everything works (control of
    the control: the supervisor does act for a capable root)."""
    box = root_box
    results = {}
    for mode in ("control", "confined"):
        for name, owner, perms in (("theirs", user.uid, 0o600), ("own", 0, 0o644)):
            path = box.project / name
            path.write_text("x")
            os.chown(path, owner, owner)
            os.chmod(path, perms)
        (box.project / "new").unlink(missing_ok=True)
        results[mode] = box.probe(CAPS_PROBE, box.project, user.uid, confined=mode == "confined",
                                  prefix=NO_CAPS if dropped else ())
        assert os.stat(box.project / "theirs").st_uid == (user.uid if dropped else 0)
    control, confined = results["control"], results["confined"]
    want = dict(append_their_0600="EACCES", chmod_theirs="EPERM", chown_theirs="EPERM", chown_own="EPERM",
                create_own="OK") if dropped else dict.fromkeys(
        ("append_their_0600", "chmod_theirs", "chown_theirs", "chown_own", "create_own"), "OK")
    for key, value in want.items():
        assert control[key] == value, (key, control)
        assert confined[key] == value, (key, confined)
    assert (int(confined["caps"], 16) == 0) == dropped
