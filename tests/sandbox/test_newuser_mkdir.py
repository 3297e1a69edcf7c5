"""`mkdir -p` walks existing parents: a mkdir of a name that exists gets
EEXIST, as from the kernel, before any refusal, with no notice (issue 18,
item 6: `mkdir -p ~/.cache/pip` printed a denial per existing parent)."""

import errno

SCRIPT = r'''
import errno, os, sys
for path in sys.argv[1:]:
    try:
        os.mkdir(path)
        print(path, "OK")
    except OSError as err:
        print(path, errno.errorcode[err.errno])
'''


def test_mkdir_of_an_existing_name_is_eexist_without_notice(who):
    outside = who.mkdir(who.base / "outside")
    project = who.mkdir(who.base / "proj")
    script = who.write(who.base / "mk.py", SCRIPT)
    args = ["/usr/bin/python3", str(script), str(outside), str(who.base), str(outside / "new")]
    plain = who.run(args)  # the kernel's answers, unconfined
    assert plain.stdout.decode().split() == [str(outside), "EEXIST", str(who.base), "EEXIST", str(outside / "new"), "OK"]
    (outside / "new").rmdir()
    boxed = who.peninsula("run", "--", *args, cwd=project)
    assert boxed.stdout.decode().split() == [str(outside), "EEXIST", str(who.base), "EEXIST", str(outside / "new"), "EACCES"]
    denials = [l for l in boxed.stderr.decode().splitlines() if l.startswith("peninsula: denied")]
    assert len(denials) == 1 and f"mkdir of {outside / 'new'}" in denials[0], boxed.stderr
