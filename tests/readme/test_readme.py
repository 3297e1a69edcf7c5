"""README.md's own examples, executed, so that README and behaviour cannot
drift apart: every code block is extracted from README.md and either run
(as root and as the plain test user) or checked against real output. A
block kind that none of these tests covers fails test_every_block_is_covered."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

# Not from conftest: which conftest module that name means depends on the
# order pytest collected the directories in.
REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"

README = (REPO / "README.md").read_text()
BLOCKS = [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.S | re.M)]


def blocks(kind: str, containing: str = "") -> list[str]:
    return [text for lang, text in BLOCKS if lang == kind and containing in text]


def peninsula_lines() -> list[str]:
    """Every `peninsula ...` command line in the sh blocks, comments cut."""
    out = []
    for text in blocks("sh"):
        for line in text.splitlines():
            line = line.split(" #", 1)[0].split(" | ", 1)[0].strip()
            if line.startswith("peninsula "):
                out.append(line)
    return out


def test_every_block_is_covered():
    covered = {"sh", "toml", "python", "", "yaml", "nix"}
    assert {lang for lang, _ in BLOCKS} <= covered, {lang for lang, _ in BLOCKS}
    assert len(peninsula_lines()) >= 12


@pytest.mark.parametrize("line", peninsula_lines())
def test_every_documented_command_line_parses(line):
    from peninsula.cli.main import _modules_for, build_parser

    argv = shlex.split(line)[1:]
    argv = ["x" if a == "4242-1795570839" else a for a in argv]
    parser = build_parser(_modules_for(argv))
    args, extra = parser.parse_known_args(argv)
    assert not extra, (line, extra)
    assert getattr(args, "handler", None) is not None, line


RUN_LINES = [l for l in peninsula_lines() if l.startswith("peninsula run ")]


@pytest.mark.parametrize("line", RUN_LINES)
def test_run_examples_work_with_their_options(who, line):
    """Each documented `peninsula run` line, its options as written, with
    the command after `--` replaced by one that is on every machine."""
    options = shlex.split(line.split(" -- ", 1)[0])[1:]
    home = who.mkdir(who.base / "home")
    project = who.mkdir(who.base / "proj")
    result = who.peninsula(*options, "--", "sh", "-c", "echo ok > made-here", cwd=project,
                           env={"HOME": str(home)}, timeout=60)
    assert result.returncode == 0, (line, result)
    assert (project / "made-here").read_text() == "ok\n"
    if "--report" in options:
        assert (project / options[options.index("--report") + 1]).is_file()
    if "--profile" in options and "npm" in options:
        assert (home / ".npm").is_dir()  # created: it did not exist


def test_toml_examples_load():
    from peninsula.config.options import parse_options
    from peninsula.config.user import parse_user_config

    user, project, run, starship = [], [], [], []
    for text in blocks("toml"):
        if "[projects]" in text:
            user.append(text)
        elif "[custom.peninsula]" in text:
            starship.append(text)
        elif "applied only once trusted" in text:
            project.append(text)
        else:
            run.append(text)
    assert user and project and run and starship
    for text in user:
        conf = parse_user_config(text, "/home/u/.config/peninsula/config.toml")
        assert conf.roots and conf.protect
    for text in project + run:
        assert parse_options(text, "/home/u/src/app/.peninsula.toml").write


def test_hook_blocks_are_valid_shell(who):
    (hooks,) = blocks("sh", "~/.bashrc")
    for shell, checker in (("bash", ["bash", "-n"]), ("zsh", ["zsh", "-n"]), ("fish", ["fish", "-n"])):
        assert f"peninsula hook {shell}" in hooks
        text = who.peninsula("hook", shell).stdout
        script = who.write(who.base / f"hook.{shell}", text)
        result = who.run([*checker, script])
        assert result.returncode == 0, (shell, result.stderr)


def test_prompt_block_lines_are_valid_shell(who):
    (prompt,) = blocks("sh", "PENINSULA_PROMPT")
    bash_line, zsh_line = [l.split("  #", 1)[0].strip() for l in prompt.splitlines()[:2]]
    assert who.run(["bash", "-c", f"PS1=x; {bash_line}; echo \"${{PS1@P}}\""], env={"PENINSULA_PROMPT": "[p] "}).stdout == b"[p] x\n"
    assert who.run(["zsh", "-c", f"PS1=x; {zsh_line}; print -r -- ${{(e)PS1}}"], env={"PENINSULA_PROMPT": "[p] "}).stdout == b"[p] x\n"


def test_run_denial_lines_are_what_run_prints(who):
    (example,) = [t for lang, t in BLOCKS if lang == "" and "allow with --write" in t]
    documented = example.strip().splitlines()
    home = who.mkdir(who.base / "home")
    project = who.mkdir(who.base / "proj")
    script = f"echo x >> {home}/.bashrc; echo y > {home}/notes.txt; true"
    result = who.peninsula("run", "--", "sh", "-c", script, cwd=project, env={"HOME": str(home)})
    printed = [l for l in result.stderr.decode().splitlines() if l.startswith("peninsula: denied")]
    assert len(printed) == len(documented) == 2, (printed, documented)
    for doc, real in zip(documented, printed):
        assert _same_shape(doc, real, home), (doc, real)


def _same_shape(documented: str, real: str, home: Path) -> bool:
    """The line with the documentation's home, command name and pid put in."""
    shaped = re.sub(r"by \S+ \(pid \d+\)", "by sh (pid 4242)", real).replace(str(home), "/home/u")
    return shaped == documented


def test_shell_denial_lines_are_what_the_session_prints(term_factory, home, user):
    from shell.conftest import supervised

    (example,) = [t for lang, t in BLOCKS if lang == "" and "[peninsula: app]" in t]
    documented = [l for l in example.splitlines() if l.startswith("peninsula: denied")]
    app = user.mkdir(home / "src" / "app")
    user.write(app / ".peninsula.toml", "")
    term = term_factory("bash")
    supervised(term)
    term.run("cd src/app")
    text = term.run("echo x >> ~/.bashrc; echo y > ~/notes.txt")
    printed = [l for l in text.splitlines() if l.startswith("peninsula: denied")]
    assert len(printed) == len(documented) == 2, text
    for doc, real in zip(documented, printed):
        shaped = re.sub(r"by \S+ \(pid \d+\)", "by node (pid 4242)", real).replace(str(home), "/home/u")
        assert shaped == doc, (doc, real)


def test_unsupervised_line_is_what_the_hook_prints(term_factory, home, user):
    (example,) = [t for lang, t in BLOCKS if lang == "" and "UNSUPERVISED" in t]
    documented = example.strip()
    config = home / ".config" / "peninsula" / "config.toml"
    user.write(config, 'write = ["~/.cache/pip"\nprotect = []\n')
    term = term_factory("bash")
    text = term.run('echo "alive=[$PENINSULA_SESSION]"')
    assert "alive=[]" in text
    printed = [l for l in text.splitlines() if l.startswith("peninsula:")]
    assert [l.replace(str(home), "/home/u") for l in printed] == [documented], text


def test_library_example_runs(who):
    (example,) = blocks("python")
    project = who.mkdir(who.base / "app")
    code = example.replace('"/src/app"', repr(str(project))).replace('["make", "-j4"]', '["sh", "-c", "echo > built"]')
    result = who.run([SYSTEM_PYTHON, "-c", code], cwd=project, env={"HOME": str(who.mkdir(who.base / "home"))})
    assert result.returncode == 0, result
    assert result.stdout.split()[:3] == [b"ok", b"0", b"0"], result.stdout  # status, exit code, denials
    assert (project / "built").exists()


def test_documented_exit_codes_are_the_tested_ones():
    documented = {int(c) for c in re.findall(r"`(12\d)`", README.split("Exit status:", 1)[1].split("###", 1)[0])}
    tested = set()
    for name in dir(__import__("readme.test_exit_codes", fromlist=["x"])):
        tested.update(int(c) for c in re.findall(r"_(12\d)_", name + "_"))
    assert documented == {123, 124, 125, 126, 127}
    assert documented <= tested, (documented, tested)
