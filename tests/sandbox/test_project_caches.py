"""Issue 13 item 3 for `peninsula run`: the project's own tool caches."""

from __future__ import annotations

import os


def test_run_points_tools_at_the_project_cache(who):
    project = who.mkdir(who.base / "p")
    other = who.mkdir(who.base / "q")
    script = 'echo "$PIP_CACHE_DIR"; mkdir -p "$PIP_CACHE_DIR" && echo ok > "$PIP_CACHE_DIR/probe"'
    proc = who.peninsula("run", "--", "sh", "-c", script, cwd=project, env={"XDG_CACHE_HOME": ""})
    assert proc.returncode == 0, proc.stderr
    pip_cache = proc.stdout.decode().splitlines()[0]
    assert pip_cache.startswith(str(who.home / ".cache" / "peninsula-projects" / "p-")), pip_cache
    assert not pip_cache.startswith(str(project))
    assert (open(os.path.join(pip_cache, "probe")).read()) == "ok\n"
    # Another project's command cannot write it.
    proc = who.peninsula("run", "--", "sh", "-c", f"echo poison > {pip_cache}/probe", cwd=other, env={"XDG_CACHE_HOME": ""})
    assert proc.returncode != 0
    assert b"denied open of " + pip_cache.encode() in proc.stderr
    assert open(os.path.join(pip_cache, "probe")).read() == "ok\n"
