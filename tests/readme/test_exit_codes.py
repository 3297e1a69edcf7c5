"""README's exit codes, one test each, as root and as a plain user."""

import os
import signal
import subprocess

import pytest


def test_125_bad_option_names_the_subcommand(who):
    result = who.peninsula("run", "--limt-as", "4G", "--", "true")
    assert result.returncode == 125, result
    assert b"usage: peninsula run" in result.stderr
    assert b"unrecognized arguments: --limt-as" in result.stderr


@pytest.mark.parametrize("args", [["bogus"], [], ["status", "--bad"], ["run", "--limit-as", "x", "--", "true"]])
def test_125_other_bad_command_lines(who, args):
    result = who.peninsula(*args)
    assert result.returncode == 125, result


def test_125_config_error(who):
    config = who.write(who.base / "c.toml", 'write = ["a"\n')
    result = who.peninsula("run", "--config", config, "--", "true")
    assert result.returncode == 125, result
    assert f"{config}:1: missing ']'".encode() in result.stderr


def test_the_commands_own_status_and_the_control(who):
    assert who.peninsula("run", "--", "sh", "-c", "exit 7").returncode == 7
    assert who.peninsula("run", "--", "true").returncode == 0


def test_128_plus_signal(who):
    result = who.peninsula("run", "--", "sh", "-c", "kill -TERM $$")
    assert result.returncode == 128 + signal.SIGTERM, result


def test_124_walltime(who):
    result = who.peninsula("run", "--limit-walltime", "0.5", "--", "sleep", "30", timeout=30)
    assert result.returncode == 124, result


def test_126_not_executable_127_not_found(who):
    script = who.write(who.base / "noexec.sh", "#!/bin/sh\n")
    os.chmod(script, 0o644)
    assert who.peninsula("run", "--", str(script)).returncode == 126
    assert who.peninsula("run", "--", str(who.base / "missing")).returncode == 127


def test_123_supervisor_died(who):
    proc = subprocess.Popen(
        who.prefix() + ["/usr/bin/python3", "-m", "peninsula", "run", "--", "sh", "-c", "echo $PPID; read x; : > after"],
        cwd=who.base, env=who.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        supervisor = int(proc.stdout.readline())
        with open(f"/proc/{supervisor}/cmdline", "rb") as handle:
            assert b"peninsula" in handle.read()
        os.kill(supervisor, signal.SIGKILL)
        _, err = proc.communicate(b"go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 123, err
    assert not (who.base / "after").exists()
