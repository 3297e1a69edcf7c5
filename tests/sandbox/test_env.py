"""--clear-env, --keep-env, --setenv, --workdir."""

from __future__ import annotations


def _dump(who, *args, cwd, env=None):
    # env(1), not python: python's C-locale coercion would add LC_CTYPE itself.
    proc = who.peninsula("run", *args, "--", "sh", "-c", "pwd -P; exec env -0", cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr
    cwd_line, _, blob = proc.stdout.partition(b"\n")
    pairs = [item.decode().split("=", 1) for item in blob.split(b"\0") if item]
    environ = {k: v for k, v in pairs}
    environ.pop("PWD", None)  # set by sh itself
    return {"env": environ, "cwd": cwd_line.decode()}


def test_environment_is_inherited_by_default(who):
    project = who.mkdir(who.base / "p")
    out = _dump(who, cwd=project, env={"SECRET_TOKEN": "s3cret", "LC_TIME": "C"})
    assert out["env"]["SECRET_TOKEN"] == "s3cret"
    assert out["env"]["HOME"] == str(who.home)
    assert out["env"]["PENINSULA_SANDBOX"] == "run"


def test_clear_env(who):
    project = who.mkdir(who.base / "p")
    out = _dump(who, "--clear-env", cwd=project, env={"SECRET_TOKEN": "s3cret"})
    assert out["env"].pop("PENINSULA_RUN_NEST_FD").isdigit()  # the nest socket (run_nesting.py)
    assert out["env"] == {"PENINSULA_SANDBOX": "run"}


def test_keep_env_and_setenv(who):
    project = who.mkdir(who.base / "p")
    out = _dump(who, "--clear-env", "--keep-env", "HOME", "--keep-env", "LC_*", "--setenv", "CI=1",
                "--setenv", "EMPTY=", "--setenv", "WITH_EQ=a=b", cwd=project,
                env={"SECRET_TOKEN": "s3cret", "LC_TIME": "C", "LC_NUMERIC": "C"})
    assert out["env"].pop("PENINSULA_RUN_NEST_FD").isdigit()
    assert out["env"] == {"HOME": str(who.home), "LC_TIME": "C", "LC_NUMERIC": "C", "CI": "1", "EMPTY": "",
                          "WITH_EQ": "a=b", "PENINSULA_SANDBOX": "run"}


def test_setenv_without_clear_overrides(who):
    project = who.mkdir(who.base / "p")
    out = _dump(who, "--setenv", "SECRET_TOKEN=replaced", cwd=project, env={"SECRET_TOKEN": "s3cret"})
    assert out["env"]["SECRET_TOKEN"] == "replaced"
    assert out["env"]["HOME"] == str(who.home)


def test_command_found_without_path(who):
    """With an empty environment the command is looked up in /bin:/usr/bin."""
    project = who.mkdir(who.base / "p")
    proc = who.peninsula("run", "--clear-env", "--", "sh", "-c", "echo ok", cwd=project)
    assert proc.returncode == 0 and proc.stdout == b"ok\n", proc.stderr


def test_workdir(who):
    project = who.mkdir(who.base / "p")
    sub = who.mkdir(project / "sub")
    assert _dump(who, cwd=project)["cwd"] == str(project)
    assert _dump(who, "--workdir", "sub", cwd=project)["cwd"] == str(sub)
    # The project stays the current directory: writes in it still work from sub.
    proc = who.peninsula("run", "--workdir", str(sub), "--", "sh", "-c", "echo x > ../top; echo rc=$?", cwd=project)
    assert b"rc=0" in proc.stdout and (project / "top").exists()
    # With namespaces too (joining a mount namespace moves to its root first).
    assert _dump(who, "--workdir", "sub", "--unshare-pid", cwd=project)["cwd"] == str(sub)


def test_bad_env_options_are_refused(who):
    project = who.mkdir(who.base / "p")
    for args, words in ((["--keep-env", "HOME"], b"--clear-env"), (["--setenv", "NOEQUALS"], b"--setenv"),
                        (["--setenv", "1BAD=x"], b"--setenv"), (["--workdir", "missing"], b"--workdir")):
        proc = who.peninsula("run", *args, "--", "true", cwd=project)
        assert proc.returncode == 125, (args, proc.stderr)
        assert words in proc.stderr
