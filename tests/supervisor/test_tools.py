"""Real tools confined to a project copy do their work, and what they would
write outside is refused: tar, git, python -m venv + pip, make, compileall."""

import base64
import hashlib
import io
import os
import stat
import subprocess
import tarfile
import zipfile

from .conftest import SYSTEM_PYTHON, listing, snapshot


def _own_tree(box, root):
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, box.who.uid, box.who.gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), box.who.uid, box.who.gid, follow_symlinks=False)


def _archive(path, outside):
    """A tar with directories, modes, a symlink, hard links, and (last) one
    member with an absolute name outside the project."""
    with tarfile.open(path, "w") as tar:
        def add(name, data=b"", mode=0o644, kind=tarfile.REGTYPE, link=""):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1_600_000_000
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("pkg", kind=tarfile.DIRTYPE, mode=0o755)
        add("pkg/bin", kind=tarfile.DIRTYPE, mode=0o755)
        add("pkg/bin/tool", b"#!/bin/sh\necho tool\n", 0o755)
        add("pkg/README", b"read me\n", 0o644)
        add("pkg/HARDLINK", kind=tarfile.LNKTYPE, link="pkg/README")
        add("pkg/sub/deep/HARD2", kind=tarfile.LNKTYPE, link="pkg/bin/tool")
        add("pkg/link", kind=tarfile.SYMTYPE, link="README")
        add("pkg/private", b"secret\n", 0o600)
        for i in range(200):
            add(f"pkg/many/f{i:03}", b"x" * i)
    with tarfile.open(str(path) + ".evil", "w") as tar:
        info = tarfile.TarInfo(str(outside / "planted"))
        data = b"planted by tar\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_tar_extract(box):
    archive = box.base / "a.tar"
    _archive(archive, box.outside)
    os.chmod(archive, 0o644)
    os.chmod(str(archive) + ".evil", 0o644)
    before = snapshot(box.outside)
    proc = box.run("tar", "xf", archive)
    assert proc.returncode == 0, proc.stderr
    p = box.project / "pkg"
    assert (p / "bin" / "tool").read_bytes() == b"#!/bin/sh\necho tool\n"
    assert stat.S_IMODE(os.stat(p / "bin" / "tool").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(p / "private").st_mode) == 0o600
    assert os.stat(p / "HARDLINK").st_ino == os.stat(p / "README").st_ino
    assert os.stat(p / "sub" / "deep" / "HARD2").st_ino == os.stat(p / "bin" / "tool").st_ino
    assert os.readlink(p / "link") == "README"
    assert os.stat(p / "README").st_mtime == 1_600_000_000
    assert len(os.listdir(p / "many")) == 200
    assert os.stat(p / "README").st_uid == box.who.uid
    # extracting over the tree again (files exist, hard links present) works too
    proc = box.run("tar", "xf", archive)
    assert proc.returncode == 0, proc.stderr
    # an absolute member pointing outside: tar -P tries, peninsula refuses
    proc = box.run("tar", "-xPf", str(archive) + ".evil")
    assert proc.returncode != 0
    assert b"Permission denied" in proc.stderr
    assert snapshot(box.outside) == before
    # the same extraction without peninsula does write there (the control)
    ctl = box.who.run(["tar", "-xPf", str(archive) + ".evil"], cwd=box.project)
    assert ctl.returncode == 0 and (box.outside / "planted").exists()


def test_git(box):
    env = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.org", "GIT_COMMITTER_NAME": "A",
           "GIT_COMMITTER_EMAIL": "a@example.org", "GIT_CONFIG_NOSYSTEM": "1"}
    for i in range(20):
        box.file(box.project / f"file{i}.txt", f"content {i}\n")
    box.dir(box.project / "src")
    box.file(box.project / "src" / "main.c", "int main(void){return 0;}\n")
    box.run("true")  # peninsula makes the project's tool cache dir (~/.cache/peninsula-projects/...) once
    home_before = snapshot(box.who.home) if box.who.home.exists() and not box.who.is_root else None
    script = (
        "set -e; git init -q -b main .; git add -A; git commit -q -m first; "
        "echo change >> file1.txt; git rm -q file2.txt; git mv file3.txt renamed.txt; "
        "git commit -q -am second; git checkout -q -b topic; echo t > t.txt; git add t.txt; "
        "git commit -q -m topic; git checkout -q main; git merge -q --no-edit topic; git gc -q; "
        "git log --oneline | wc -l; git status --porcelain | wc -l"
    )
    proc = box.run("sh", "-c", script, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [b"3", b"0"]
    assert (box.project / ".git" / "HEAD").exists()
    if home_before is not None:
        assert snapshot(box.who.home) == home_before  # nothing written to ~ (e.g. ~/.gitconfig)
    # git writing its global config is refused (it lies outside the project)
    proc = box.run("git", "config", "--global", "user.name", "x", env={"HOME": str(box.outside)})
    assert proc.returncode != 0
    assert not (box.outside / ".gitconfig").exists()


def _wheel(path):
    """A minimal pure-Python wheel, written by hand (a wheel is a zip)."""
    name, version = "peninsula_probe", "1.0"
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for fname, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{fname},sha256={digest},{len(data)}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = path / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for fname, data in files.items():
            zf.writestr(fname, data)
    os.chmod(wheel, 0o644)
    return wheel


def test_venv_and_pip(box):
    wheels = box.dir(box.base / "wheels")
    wheel = _wheel(wheels)
    env = {"PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": ""}
    proc = box.run("sh", "-c",
                   f"set -e; {SYSTEM_PYTHON} -m venv venv; venv/bin/pip install -q --no-index --find-links {wheels} peninsula_probe; "
                   "venv/bin/python -c 'import peninsula_probe; print(peninsula_probe.VALUE)'",
                   env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith(b"42")
    site = list((box.project / "venv" / "lib").glob("python3*/site-packages/peninsula_probe/__init__.py"))
    assert site
    # pip installing into a target outside the project is refused
    proc = box.run("venv/bin/pip", "install", "-q", "--no-index", "--find-links", wheels,
                   "--target", box.outside / "site", "peninsula_probe", env=env, timeout=300)
    assert proc.returncode != 0
    assert not (box.outside / "site" / "peninsula_probe").exists()


def test_make(box):
    src = box.project
    box.file(src / "util.c", "int twice(int x) { return 2 * x; }\n")
    box.file(src / "main.c", '#include <stdio.h>\nint twice(int);\nint main(void) { printf("%d\\n", twice(21)); return 0; }\n')
    box.file(src / "Makefile",
             "CFLAGS = -O2\nOBJ = main.o util.o\nprog: $(OBJ)\n\t$(CC) -o $@ $(OBJ)\n"
             "install: prog\n\tinstall -m 755 prog $(DESTDIR)/prog\nclean:\n\trm -f prog $(OBJ)\n")
    proc = box.run("make", "-j2")
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([src / "prog"], capture_output=True).stdout == b"42\n"
    assert stat.S_IMODE(os.stat(src / "prog").st_mode) == 0o755
    proc = box.run("make", "clean")
    assert proc.returncode == 0 and not (src / "prog").exists()
    proc = box.run("make", "prog", "install", f"DESTDIR={box.outside}")
    assert proc.returncode != 0
    assert listing(box.outside) == []


def test_compileall(box):
    pkg = box.dir(box.project / "pkg")
    for i in range(30):
        box.file(pkg / f"m{i}.py", f"def f{i}():\n    return {i}\n")
    proc = box.run(SYSTEM_PYTHON, "-m", "compileall", "-q", pkg, env={"PYTHONDONTWRITEBYTECODE": ""})
    assert proc.returncode == 0, proc.stderr
    assert len(list((pkg / "__pycache__").glob("*.pyc"))) == 30
    outside_pkg = box.dir(box.outside / "pkg")
    box.file(outside_pkg / "o.py", "x = 1\n")
    proc = box.run(SYSTEM_PYTHON, "-m", "compileall", "-q", outside_pkg, env={"PYTHONDONTWRITEBYTECODE": ""})
    assert proc.returncode != 0
    assert not (outside_pkg / "__pycache__").exists()
