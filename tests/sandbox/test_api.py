"""The library API: peninsula.Sandbox(...).run(argv) -> Result and
.spawn(argv) -> handle with .pid, .poll(), .wait(), .kill(); the same
options as the CLI and the same fields as the report."""

from __future__ import annotations

import json
import textwrap

from .helpers import PY, load_schema, processes_with, validate, wait_gone

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from peninsula import Sandbox, SandboxError, Result
    project, outside, marker = sys.argv[1:4]
    out = {}
    notices = open(os.path.join(project, "notices.txt"), "w")

    r = Sandbox(project=project, stderr=notices, log=os.devnull).run(
        ["sh", "-c", f"echo in > {project}/in; echo out > {outside}/x; exit 5"])
    out["basic"] = r.to_dict()

    r = Sandbox(project=project, write=[outside], stderr=notices, log=os.devnull).run(
        ["sh", "-c", f"echo out > {outside}/y"])
    out["write"] = r.to_dict()

    r = Sandbox(project=project, clear_env=True, keep_env=["HOME"], setenv={"A": "1"}, unshare_net=True,
                unshare_pid=True, unshare_uts=True, hostname="apibox", allow_connect=[1], limit_nofile=64,
                limit_as="1G", log=os.devnull).run(
        ["sh", "-c", f"env > {project}/env.txt; hostname >> {project}/env.txt; echo $$ >> {project}/env.txt; ulimit -n >> {project}/env.txt"])
    out["options"] = r.to_dict()

    running = Sandbox(project=project, log=os.devnull).spawn(
        ["bash", "-c", f"(exec -a {marker}-child sleep 300) & (setsid bash -c 'exec -a {marker}-orphan sleep 300' &); exec -a {marker}-main sleep 300"])
    out["pid"] = running.pid
    time.sleep(1)
    out["pid_cmdline"] = open(f"/proc/{running.pid}/cmdline").read().replace("\\0", " ")
    out["poll_before"] = running.poll() is None
    running.kill()
    out["killed"] = running.wait().to_dict()
    out["poll_after"] = running.poll() is not None

    try:
        Sandbox(project=project, hostname="x").spawn(["true"])
        out["hostname_error"] = None
    except SandboxError as err:
        out["hostname_error"] = str(err)
    try:
        Sandbox(limit_as="lots")
        out["size_error"] = None
    except SandboxError as err:
        out["size_error"] = str(err)
    r = Sandbox(project=project, log=os.devnull, limit_walltime=0.5).run(["sleep", "30"])
    out["timeout"] = r.to_dict()
    print(json.dumps(out))
""")


def test_library_api(who):
    project = who.mkdir(who.base / "p")
    outside = who.mkdir(who.base / "outside")
    script = who.write(who.base / "api.py", SCRIPT)
    marker = f"papi{id(who)}"
    proc = who.run([PY, script, project, outside, marker], cwd=project, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    out = json.loads(proc.stdout)
    schema = load_schema()
    for key in ("basic", "write", "options", "killed", "timeout"):
        assert validate(out[key], schema) == [], (key, out[key])

    basic = out["basic"]
    assert (basic["status"], basic["exit_code"], basic["denials"]) == ("exited nonzero", 5, 1)
    assert basic["first_denials"][0]["path"] == f"{outside}/x"
    assert (project / "in").exists() and not (outside / "x").exists()
    assert f"denied open of {outside}/x".encode() in (project / "notices.txt").read_bytes()
    assert out["write"]["status"] == "ok" and (outside / "y").exists()

    assert out["options"]["status"] == "ok", out["options"]
    lines = (project / "env.txt").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if "=" in line)
    assert env.get("A") == "1" and env.get("HOME") == str(who.home) and "USER" not in env
    assert lines[-3:] == ["apibox", "2", "64"]

    assert out["pid"] > 0 and f"{marker}-main" in out["pid_cmdline"]
    assert out["poll_before"] and out["poll_after"]
    assert out["killed"]["status"] == "signaled" and out["killed"]["signal"] == 9
    assert wait_gone(marker) == []

    assert "--unshare-uts" in out["hostname_error"]
    assert "--limit-as" in out["size_error"]
    assert out["timeout"]["status"] == "timed out" and out["timeout"]["returncode"] == 124


def test_spawned_tree_lives_until_killed(who):
    """The kill() case above is not vacuous: without it the tree lives on."""
    project = who.mkdir(who.base / "p")
    marker = f"plive{id(who)}"
    script = who.write(who.base / "live.py", textwrap.dedent(f"""
        import time
        from peninsula import Sandbox
        running = Sandbox(project={str(project)!r}, log="/dev/null").spawn(
            ["bash", "-c", "(setsid bash -c 'exec -a {marker}-orphan sleep 3' &); exit 0"])
        time.sleep(1.5)
        print(running.poll() is None, flush=True)
        print(running.wait().status)
    """))
    proc = who.run([PY, script], cwd=project, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    # Still running after 1.5 s: the orphan keeps the sandbox alive until it ends.
    assert proc.stdout.split() == [b"True", b"ok"]
    assert processes_with(marker) == []
