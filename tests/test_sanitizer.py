"""The compiled hot path under AddressSanitizer and UBSan (a step of the
README's test command).

The extension is built with -fsanitize=address,undefined into a temporary
directory and the suites that drive it hardest run again in a child
pytest on that build: the engine suite (its compiled-path half), the
hostile-input fuzz and the hot-path tests, as root and as a plain user.
Any sanitizer report from any process fails this test. About two and a
half minutes on two cores; the pure-Python halves are left out because
they never load the extension.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cbuild import compile_c
from sanitize import SANITIZE, build, reports, runtime_env

from conftest import SYSTEM_PYTHON
from peninsula.supervisor import fastpath

REPO = Path(__file__).resolve().parent.parent
SUITES = ("tests/supervisor", "tests/reliability/test_hostile.py", "tests/sandbox/test_hot_path.py")
# The compiled-path half of the engine tests, less its two slowest (a venv
# and pip install: a minute together, mostly pip's own work).
SELECT = "not -python and not test_venv_and_pip"

# Positive controls for the report directory: a heap overflow (ASan) and a
# signed overflow (UBSan) in a program built with the same sanitizers.
BAD_C = r"""
#include <limits.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    size_t n = strlen(argv[1]) + 7;  /* 8, known only at run time */
    if (argv[1][0] == 'a') {
        char *p = malloc(n);
        memset(p, 1, n + (size_t)argc - 1);  /* one byte too many */
        return p[0];
    }
    int big = INT_MAX - (int)n + 8;
    return big + argc > 0;  /* INT_MAX + 2 */
}
"""

pytestmark = pytest.mark.skipif(fastpath._fastpath is None, reason="the compiled hot path is not built here")


@pytest.fixture
def report_dir():
    path = Path(tempfile.mkdtemp(prefix="peninsula-sanitizer-", dir="/tmp"))
    os.chmod(path, 0o1777)  # every identity writes its reports here (the supervisor too: /tmp is in its roots)
    yield path
    for name in path.iterdir():
        name.unlink()
    path.rmdir()


def test_sanitizer_reports_are_caught(report_dir):
    bad = compile_c(BAD_C, "sanitizer-bad", SANITIZE)
    env = {**os.environ, **runtime_env(str(report_dir))}
    assert not reports(report_dir)
    for kind, word in (("a", "heap-buffer-overflow"), ("u", "ILL on unknown address")):
        proc = subprocess.run([bad, kind], env=env, capture_output=True)
        assert proc.returncode != 0
        assert any(word in text for text in reports(report_dir)), (kind, reports(report_dir))


def test_compiled_path_suites_under_asan_and_ubsan(report_dir, tmp_path):
    so = build(tmp_path)
    os.chmod(tmp_path, 0o755)
    env = {**os.environ, "PENINSULA_TEST_SANITIZED_SO": str(so), "PENINSULA_TEST_SANITIZER_REPORTS": str(report_dir)}
    # The supervisor really runs on the sanitized build: its maps show both.
    check = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s",
                            "tests/test_sanitizer.py::test_inner_supervisor_maps"], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-k", SELECT, *SUITES],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    found = reports(report_dir)
    assert not found, "sanitizer reports:\n" + "\n".join(found)[:20000]
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout.splitlines()[-1], proc.stdout[-2000:]


@pytest.mark.skipif(not os.environ.get("PENINSULA_TEST_SANITIZED_SO"), reason="only inside the sanitizer step")
def test_inner_supervisor_maps(root):
    """(Run by the step above, in the sanitized environment.) A supervisor
    maps libasan and the runtime copy's sanitized extension."""
    project = root.mkdir(root.base / "p")
    popen = subprocess.Popen([SYSTEM_PYTHON, "-m", "peninsula", "run",
                              "--project", project, "--log", root.base / "log", "--", "sleep", "3"],
                             cwd=project, env=root.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        maps = ""
        for _ in range(200):
            children = Path(f"/proc/{popen.pid}/task/{popen.pid}/children").read_text().split()
            for child in children:
                text = Path(f"/proc/{child}/maps").read_text()
                if "_fastpath" in text:
                    maps = text
            if maps:
                break
            subprocess.run(["sleep", "0.02"])
        assert "libasan" in maps, "the supervisor does not run with the ASan runtime"
        assert f"{root.runtime}/peninsula/supervisor/_fastpath" in maps, "the supervisor did not load the sanitized extension"
    finally:
        popen.wait(30)
