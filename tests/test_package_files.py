"""pyproject ships every package and every data file under peninsula/ (the
wheel and the nix package are built from that list, not from the tree)."""

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _setuptools():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_listed():
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "peninsula").rglob("__init__.py")}
    assert found == set(_setuptools()["packages"])


def test_every_data_file_is_shipped():
    data = _setuptools()["package-data"]
    unshipped = []
    for path in (REPO / "peninsula").rglob("*"):
        if not path.is_file() or path.suffix in (".py", ".pyc", ".so") or "__pycache__" in path.parts:
            continue
        if path.suffix in (".c", ".h"):
            continue  # the compiled hot path's sources: setup.py builds them, the wheel ships the result
        package_dir = next(p for p in path.parents if (p / "__init__.py").exists())
        package = ".".join(package_dir.relative_to(REPO).parts)
        rel = str(path.relative_to(package_dir))
        if not any(fnmatch.fnmatch(rel, pattern) for pattern in data.get(package, ())):
            unshipped.append(str(path.relative_to(REPO)))
    assert not unshipped
