"""The compiled hot path built with AddressSanitizer and UBSan, and the
environment that runs a supervisor on it.

The compiled hot path (peninsula/supervisor/_fastpath_c/) parses what hostile processes send, inside the supervisor;
a memory error there may pass every functional test. The system python3
is not built with ASan, so the sanitizer runtime is preloaded
(LD_PRELOAD; it must come first among the libraries) and every report is
written to a directory the tests read afterwards: any file there is a
failure. Only peninsula's own processes get it: the runtime copy's
`python3 -m peninsula` re-executes itself with the preload and removes it
from its environment again, so the commands it runs (whose behaviour the
tests compare with a control) never carry the sanitizer's interceptors. Leak detection is off: the interpreter keeps memory until exit
by design, which LeakSanitizer would report on every run.
"""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((REPO / "peninsula" / "supervisor" / "_fastpath_c").glob("*.c"))
# The name the interpreter imports peninsula.supervisor._fastpath from.
SO_NAME = "_fastpath" + sysconfig.get_config_var("EXT_SUFFIX")
# Undefined behaviour traps (ud2), and ASan reports the SIGILL with its
# stack into the same log as its own errors: gcc 12's UBSan runtime here
# ignores log_path when used with ASan (reports would go to a stderr the
# tests may not show).
SANITIZE = ("-fsanitize=address,undefined", "-fsanitize-undefined-trap-on-error")
FLAGS = ("-shared", "-fPIC", "-g", "-O1", "-fno-omit-frame-pointer", *SANITIZE, "-Wall", "-Werror")


def build(out_dir: Path) -> Path:
    """The extension with ASan and UBSan, as out_dir/SO_NAME."""
    include = sysconfig.get_paths()["include"]
    out = out_dir / SO_NAME
    assert SOURCES, "no C sources of the hot path"
    done = subprocess.run(["gcc", *FLAGS, f"-I{include}", "-o", out, *SOURCES], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def libasan() -> str:
    path = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    assert path.startswith("/") and Path(path).exists(), f"gcc has no libasan: {path!r}"
    return str(Path(path).resolve())


def runtime_env(report_dir: str) -> dict:
    """The sanitizer runtime and where it reports."""
    return {
        "LD_PRELOAD": libasan(),
        "ASAN_OPTIONS": f"detect_leaks=0:halt_on_error=1:handle_sigill=1:log_path={report_dir}/asan",
    }


def reports(report_dir: Path) -> list[str]:
    """Every report the sanitizers wrote, one text each."""
    return [p.read_text(errors="replace") for p in sorted(Path(report_dir).iterdir()) if p.is_file()]


MARKER = "PENINSULA_TEST_SANITIZED"  # in the tests' environment: peninsula re-executes sanitized
ACTIVE = "PENINSULA_TEST_SANITIZER_ACTIVE"  # set across the re-exec


def main_shim(original: str, report_dir: str) -> str:
    """peninsula/__main__.py for the sanitized runtime copy: original,
    preceded by the re-exec under the sanitizer runtime."""
    runtime = runtime_env(report_dir)
    return f"""import os, sys
if os.environ.get({MARKER!r}) and not os.environ.get({ACTIVE!r}):
    os.execve(sys.executable, [sys.executable, "-m", "peninsula", *sys.argv[1:]],
              dict(os.environ, **{runtime!r}, {ACTIVE}="1"))
if os.environ.pop({ACTIVE!r}, None):
    for name in {(*runtime, MARKER)!r}:
        os.environ.pop(name, None)
""" + original
