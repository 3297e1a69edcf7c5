"""The registry answers `peninsula --help` as the command modules would, and
the commands run at every shell start and every prompt import little."""

import json
import subprocess
import sys

from peninsula.cli import main as cli


def test_summary_parser_is_the_full_top_level():
    full, summary = cli.build_parser(), cli.summary_parser()
    assert summary.format_help() == full.format_help()
    assert summary.format_usage() == full.format_usage()


def _imported(*argv):
    code = (
        "import sys, json, io, contextlib\n"
        "from peninsula.cli.main import main\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    try:\n"
        f"        code = main({list(argv)!r})\n"
        "    except SystemExit as stop:\n"
        "        code = stop.code\n"
        "print(json.dumps([code, out.getvalue(), sorted(sys.modules)]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", "PENINSULA_DISABLE": "1"})
    code, out, modules = json.loads(proc.stdout)
    return code, out, {m for m in modules if m.startswith("peninsula")}, set(modules)


BASE = {"peninsula", "peninsula.cli", "peninsula.cli.main", "peninsula.cli.registry", "peninsula.cli.usage"}


def test_help_imports_no_command_module():
    code, out, ours, _ = _imported("--help")
    assert code == 0 and "doctor" in out
    assert ours == BASE


def test_hook_imports_its_shell_only():
    code, out, ours, every = _imported("hook", "zsh")
    assert code == 0 and "precmd_functions" in out
    assert ours == BASE | {"peninsula.shell", "peninsula.shell.shells", "peninsula.shell.shells.zsh"}
    assert "argparse" not in every


def test_prompt_imports_no_session_module():
    code, out, ours, every = _imported("prompt")
    assert code == 0 and out == "[peninsula: OFF] "
    assert ours == BASE | {"peninsula.cli.shell", "peninsula.shell", "peninsula.shell.shells", "peninsula.shell.environ",
                           "peninsula.cli.registry"}
    assert not {"argparse", "socket"} & every
