"""Issue 19.1: a protection inside a writable root must not fall to a
rename, an exchange or a symlink of one of its parents.

`mv .git .g; echo evil > .g/hooks/pre-commit; mv .g .git` planted a git
hook: protections were checked on the names changed and their ancestors,
never on what lies beneath them. Plain user, both hot paths; the control
is the same probe run without peninsula, where every step works.
"""

from __future__ import annotations

import pytest
from .conftest import make_box, run_twin

RENAME_EXCHANGE = 2

ATTACK = r'''
proj = sys.argv[1]
os.chdir(proj)
# the hook route: move the protected tree away, write, move it back
attempt("out_rename_parent", sc, "rename", ".git", ".g")
if os.path.isdir(".g"):
    attempt("x_write_moved", lambda: open(".g/hooks/pre-commit", "w").write("evil"))
    attempt("x_back", sc, "rename", ".g", ".git")
attempt("out_renameat_parent", sc, "renameat", AT_FDCWD, ".git", AT_FDCWD, ".g2")
if os.path.isdir(".g2"):
    sc("renameat", AT_FDCWD, ".g2", AT_FDCWD, ".git")
# an exchange swaps the protected tree with one the process prepared
attempt("out_exchange", sc, "renameat2", AT_FDCWD, "decoy", AT_FDCWD, ".git", %(exchange)d)
if os.path.isdir("decoy/objects"):  # exchanged: swap back
    sc("renameat2", AT_FDCWD, "decoy", AT_FDCWD, ".git", %(exchange)d)
# onto the name: a prepared tree renamed to where the protection will be
attempt("out_rename_onto", sc, "rename", "prepared", "cfg")
# a symlink where the protection's parent will be redirects it
attempt("out_symlink_parent", sc, "symlink", "decoy", "lnk")
# the same names inside the protected tree, and unrelated renames, behave as always
attempt("write_beside", lambda: open("src/file", "w").write("ok"))
attempt("rename_unrelated", sc, "rename", "src", "src2")
attempt("rename_file_beside", sc, "rename", "src2/file", "src2/moved")
attempt("out_protected_write", lambda: open(".git/hooks/pre-commit", "a").write("evil"))
attempt("rename_inside_git", sc, "rename", ".git/objects", ".git/objects2")
done(x_hook=open(".git/hooks/pre-commit").read())
''' % {"exchange": RENAME_EXCHANGE}


def setup(box, project, outside):
    for name in (".git", "decoy", "prepared"):
        box.dir(project / name)
    box.dir(project / ".git" / "hooks")
    box.dir(project / ".git" / "objects")
    box.file(project / ".git" / "hooks" / "pre-commit", "#!/bin/sh\n", 0o755)
    box.dir(project / "decoy" / "hooks")
    box.file(project / "decoy" / "hooks" / "pre-commit", "evil")
    box.dir(project / "prepared" / "hooks")
    box.dir(project / "src")


@pytest.fixture
def user_box(user, hot_path):
    return make_box(user, hot_path)


def test_protection_beneath_a_renamed_parent(user_box):
    box = user_box
    protect = [f"--protect={box.project / name / 'hooks'}" for name in (".git", "cfg", "lnk")]
    confined, control, pair, _ = run_twin(box, ATTACK, setup, options=protect)
    assert control["rename_inside_git"] == "OK"
    assert confined["x_hook"] == "#!/bin/sh\n"
    assert (pair.project / ".git" / "hooks" / "pre-commit").read_text() == "#!/bin/sh\n"
    assert not (pair.project / "cfg").exists() and not (pair.project / "lnk").exists()
    notices = confined["_proc"].stderr.decode()
    assert "lies beneath it" in notices, notices


def test_glob_protection_beneath_a_renamed_parent(user_box):
    """A glob protection counts for every name its literal prefix overlaps."""
    box = user_box
    setup(box, box.project, box.outside)
    body = r'''
os.chdir(sys.argv[1])
attempt("rename_parent", sc, "rename", ".git", ".g")
attempt("rename_unrelated", sc, "rename", "src", "src2")
done()
'''
    confined = box.probe(body, box.project, options=["--protect", str(box.project / ".git" / "*" / "pre-*")])
    assert confined["rename_parent"] == "EACCES", confined
    assert confined["rename_unrelated"] == "OK", confined
    assert (box.project / ".git" / "hooks").is_dir()


def test_default_protections_in_a_home_project(user_box):
    """`run --project $HOME`: ~/.config holds git's global config and
    ~/.local holds ~/.local/bin, both protected by default."""
    box = user_box
    home = box.who.home
    for rel in (".config", ".config/git", ".local", ".local/bin", "work"):
        box.dir(home / rel)
    box.file(home / ".config" / "git" / "config", "[user]\n")
    body = r'''
os.chdir(sys.argv[1])
for name in (".config", ".local"):
    attempt("out_" + name, sc, "rename", name, name + "-moved")
    if RESULTS["out_" + name] == "OK":
        sc("rename", name + "-moved", name)
attempt("rename_unrelated", sc, "rename", "work", "work-moved")
if RESULTS["rename_unrelated"] == "OK":
    sc("rename", "work-moved", "work")
done()
'''
    control = box.probe(body, home, cwd=home, confined=False)
    confined = box.probe(body, home, cwd=home, options=["--project", str(home)])
    for key in ("out_.config", "out_.local"):
        assert control[key] == "OK" and confined[key] == "EACCES", (key, control, confined)
    assert control["rename_unrelated"] == confined["rename_unrelated"] == "OK"
    assert (home / ".config" / "git" / "config").read_text() == "[user]\n"
