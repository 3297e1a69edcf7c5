"""Compile the tests' C helpers once per source text, into a cache every
test identity can read and execute. Warnings are errors: a helper that
does not say exactly what it means proves nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

BIN_CACHE = Path("/var/lib/peninsula-tests/bin")


def compile_c(source: str, name: str, flags: tuple[str, ...] = ()) -> Path:
    BIN_CACHE.mkdir(parents=True, exist_ok=True)
    os.chmod(BIN_CACHE.parent, 0o755)
    os.chmod(BIN_CACHE, 0o755)
    digest = hashlib.sha256((source + repr(flags)).encode()).hexdigest()[:16]
    out = BIN_CACHE / f"{name}-{digest}"
    if not out.exists():
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / f"{name}.c"
            src.write_text(source)
            built = Path(tmp) / name
            done = subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-o", built, src, *flags], capture_output=True)
            assert done.returncode == 0, done.stderr.decode()
            os.chmod(built, 0o755)
            shutil.move(built, out)
    return out
