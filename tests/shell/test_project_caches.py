"""Issue 13 item 3: tool caches are per project by default.

Inside a project, npm (and pip, uv, go, cargo, yarn, gradle) get a cache of
that project's own, outside its tree, that no other project can write; the
user's shared cache stays a profile, and its denial notice says which.
"""

import re

import pytest

from .conftest import supervised

DENIED = "peninsula: denied"


def _cache_of(home, name):
    found = sorted((home / ".cache" / "peninsula-projects").glob(f"{name}-*"))
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_tool_cache_variables_follow_the_project(term_factory, home, shell):
    term = term_factory(shell)
    supervised(term)
    term.run("cd proj")
    term.prompt()
    text = term.run("echo \"npm=$npm_config_cache pip=$PIP_CACHE_DIR go=$GOMODCACHE\"")
    cache = _cache_of(home, "proj")
    assert f"npm={cache}/npm pip={cache}/pip go={cache}/go-mod" in text
    term.run("cd ..")
    term.prompt()
    text = term.run("echo \"after=[$npm_config_cache]\"")
    assert "after=[]" in text


def test_npm_install_uses_the_project_cache_and_no_other_project_can_write_it(term_factory, home, user):
    proj = home / "proj"
    pkg = user.mkdir(proj / "localpkg")
    user.write(pkg / "package.json", '{"name": "localpkg", "version": "1.0.0"}\n')
    user.write(pkg / "index.js", "module.exports = 42;\n")
    user.write(proj / "package.json", '{"name": "app", "version": "1.0.0"}\n')
    other = user.mkdir(home / "other")
    user.write(other / ".envrc", "export OTHER=1\n")
    assert user.run(["direnv", "allow", str(other)], cwd=other, env={"HOME": str(home)}).returncode == 0
    user.mkdir(home / ".npm")
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.run("(cd localpkg && npm pack --silent) && npm install --offline --no-audit --no-fund ./localpkg/localpkg-1.0.0.tgz",
             timeout=120)
    text = term.run("node -e 'console.log(\"answer=\" + require(\"localpkg\"))'")
    assert "answer=42" in text
    cache = _cache_of(home, "proj")
    assert (cache / "npm" / "_cacache").is_dir()
    assert list((home / ".npm").iterdir()) == []
    assert DENIED not in term.screen()
    # The shared cache is refused, and the notice names the profile.
    term.run("echo x > ~/.npm/planted")
    assert re.search(r"denied open of \S+/\.npm/planted .*profile npm allows it", term.screen())
    # Another project cannot write the first one's cache.
    term.run("cd ../other")
    term.prompt()
    term.run(f"echo poison > {cache}/npm/poison")
    assert not (cache / "npm" / "poison").exists()
    assert f"denied open of {cache}/npm/poison" in term.screen()


def test_pip_install_uses_the_project_cache(term_factory, home, user):
    proj = home / "proj"
    src = user.mkdir(proj / "localpy")
    user.write(src / "pyproject.toml",
               '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
               '[project]\nname = "localpy"\nversion = "1.0"\n')
    user.write(src / "localpy.py", "ANSWER = 42\n")
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    # Debian's pip, setuptools and wheel; --target: no venv to build first.
    # pip caches the wheel it builds from an sdist.
    term.run("(cd localpy && /usr/bin/python3 -c 'from setuptools import setup; setup()' -q sdist)", timeout=120)
    term.run("/usr/bin/python3 -m pip install -q --no-index --no-build-isolation --target site "
             "localpy/dist/localpy-1.0.tar.gz", timeout=180)
    text = term.run("PYTHONPATH=site /usr/bin/python3 -I -c 'import sys; sys.path.insert(0, \"site\"); import localpy; print(\"answer=%d\" % localpy.ANSWER)'")
    assert "answer=42" in text
    cache = _cache_of(home, "proj")
    assert list((cache / "pip").rglob("*.whl")), "pip cached the built wheel in the project's cache"
    assert not (home / ".cache" / "pip").exists()
    assert DENIED not in term.screen()


@pytest.fixture(scope="module")
def pnpm():
    """pnpm 10 (the last release that runs on Debian's Node 20), from the
    npm registry into a directory every user can read."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    prefix = Path("/var/lib/peninsula-tests/pnpm-10")
    binary = prefix / "node_modules" / ".bin" / "pnpm"
    if not binary.exists():
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.mkdir(parents=True)
        done = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), "pnpm@10"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, "npm could not fetch pnpm@10 from the registry: " + done.stderr[-2000:]
        for path in [prefix, *prefix.rglob("*")]:
            os.chmod(path, os.stat(path).st_mode | 0o444 | (0o111 if path.is_dir() else 0))
    return binary


def test_pnpm_uses_the_project_cache(term_factory, home, user, pnpm):
    proj = home / "proj"
    pkg = user.mkdir(proj / "localpkg")
    user.write(pkg / "package.json", '{"name": "localpkg", "version": "1.0.0"}\n')
    user.write(pkg / "index.js", "module.exports = 42;\n")
    user.write(proj / "package.json", '{"name": "app", "version": "1.0.0"}\n')
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.run(f"(cd localpkg && npm pack --silent) && {pnpm} add --offline ./localpkg/localpkg-1.0.0.tgz", timeout=180)
    text = term.run("node -e 'console.log(\"answer=\" + require(\"localpkg\"))'")
    assert "answer=42" in text
    cache = _cache_of(home, "proj")
    assert (cache / "pnpm" / "store").is_dir(), "pnpm's store is the project's own"
    assert not (home / ".local" / "share" / "pnpm").exists() and not (home / ".cache" / "pnpm").exists()
    assert DENIED not in term.screen()
    # The shared cache is refused, and the notice names the profile.
    term.run("mkdir ~/.cache/pnpm")
    assert re.search(r"denied mkdir of \S+/\.cache/pnpm .*profile pnpm allows it", term.screen())
