"""The Nix side: nix/*.nix parse, the policy renderer round-trips through
peninsula's own loader, the devenv module's options are exactly the
loader's keys, and the launcher the module puts in front of scripts, tasks
and processes really confines them.

Everything here runs offline with Debian's nix-instantiate and no nixpkgs:
`--store dummy://` evaluates without a /nix/store or a daemon (and without
writing anything outside the test's temp dirs); the module is evaluated with
a small stand-in for nixpkgs' lib and pkgs (STUB below). A full devenv build
needs nixpkgs from the network and is not tested here (docs/devenv.md).
"""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from peninsula.config import options as config
from peninsula.policy import engine as policy
from peninsula.config.options import ConfigError, parse_options
from peninsula.sandbox.api import Sandbox

REPO = Path(__file__).resolve().parent.parent
NIX_DIR = REPO / "nix"
EXPECTED_FILES = {
    "flake.nix", "package.nix", "devenv.nix", "devenv-module.nix",
    "options.nix", "render-policy.nix", "confine.nix",
}
SYSTEM_PYTHON = "/usr/bin/python3"


# --- running nix-instantiate offline -------------------------------------------


class Nix:
    def __init__(self, exe: str, home: Path):
        self.exe = exe
        self.home = home
        self.env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_STATE_HOME": str(home / "state"),
            "NIX_STATE_DIR": str(home / "nix-state"),
            "NIX_LOG_DIR": str(home / "nix-log"),
            "NIX_REMOTE": "",  # no daemon
            "LANG": "C.UTF-8",
        }  # NIX_PATH unset on purpose: nothing may reach for <nixpkgs>
        self._n = 0

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.exe, "--store", "dummy://", *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120,
        )

    def arg_file(self, value) -> str:
        """A Nix expression for a JSON value, passed through a file so every
        string (quotes, backslashes, control characters, "${") arrives exact."""
        self._n += 1
        path = self.home / f"arg{self._n}.json"
        path.write_text(json.dumps(value), encoding="utf-8")
        return f"(builtins.fromJSON (builtins.readFile {path}))"

    def eval(self, expr: str):
        proc = self.run("--eval", "--strict", "--json", "--expr", expr)
        assert proc.returncode == 0, f"nix-instantiate failed:\n{proc.stderr}"
        return json.loads(proc.stdout)

    def eval_error(self, expr: str) -> str:
        proc = self.run("--eval", "--strict", "--json", "--expr", expr)
        assert proc.returncode != 0, f"expected an evaluation error, got {proc.stdout}"
        return proc.stderr

    def render(self, options: dict) -> str:
        return self.eval(f"import {NIX_DIR}/render-policy.nix {self.arg_file(options)}")


@pytest.fixture(scope="module")
def nix(tmp_path_factory) -> Nix:
    exe = shutil.which("nix-instantiate") or (
        "/usr/bin/nix-instantiate" if os.access("/usr/bin/nix-instantiate", os.X_OK) else None
    )
    if exe is None:
        message = "nix-instantiate is missing: `apt-get install nix-bin` (setup.sh installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + "; the Nix tests must run in CI")
        pytest.skip(message)
    n = Nix(exe, tmp_path_factory.mktemp("nix-home"))
    probe = n.run("--eval", "--strict", "--json", "--expr", "1 + 1")
    assert probe.returncode == 0 and probe.stdout.strip() == "2", (
        f"nix-instantiate cannot evaluate offline with --store dummy://:\n{probe.stderr}"
    )
    return n


# --- parsing ---------------------------------------------------------------------


def test_every_nix_file_parses(nix):
    files = sorted(NIX_DIR.rglob("*.nix"))
    assert EXPECTED_FILES <= {f.name for f in files}
    for path in files:
        proc = nix.run("--parse", str(path))
        assert proc.returncode == 0, f"{path.relative_to(REPO)} does not parse:\n{proc.stderr}"


# --- the option table is the loader's key set ------------------------------------


def test_module_options_map_exactly_onto_config_keys(nix):
    spec = nix.eval(f"import {NIX_DIR}/options.nix")
    exposed = [o["key"] for o in spec["options"].values()]
    hidden = spec["notExposed"]
    assert len(set(exposed)) == len(exposed), "two module options render to one key"
    assert len(set(hidden)) == len(hidden)
    assert not set(exposed) & set(hidden)
    assert set(exposed) <= set(config.KEYS), f"rendered keys the loader rejects: {set(exposed) - set(config.KEYS)}"
    missing = set(config.KEYS) - set(exposed) - set(hidden)
    assert not missing, f"config keys neither offered by nix/options.nix nor listed in notExposed: {missing}"
    assert set(hidden) <= set(config.KEYS), f"notExposed names unknown keys: {set(hidden) - set(config.KEYS)}"
    for name, opt in spec["options"].items():
        assert opt["kind"] in ("paths", "names", "bool", "path"), name
        assert opt["description"].strip(), name
    # The brief's four, under the names devenv users write.
    assert {k: spec["options"][k]["key"] for k in ("allowWrite", "protect", "readOnly", "hardlinkedWrites")} == {
        "allowWrite": "write", "protect": "protect", "readOnly": "read_only", "hardlinkedWrites": "hardlinked_writes",
    }


def test_rendered_keys_are_always_loader_keys(nix):
    everything = {
        "profiles": ["a"], "allowWrite": ["/w"], "protect": ["/p"], "readOnly": True,
        "hardlinkedWrites": True, "log": "/l.jsonl",
    }
    doc = tomllib.loads(nix.render(everything))
    assert set(doc) <= set(config.KEYS)
    assert set(doc) == {"include", "write", "protect", "read_only", "hardlinked_writes", "log"}


# --- round trip: options -> TOML -> Options -> Policy -> decisions ---------------


@pytest.fixture
def world(scratch, monkeypatch):
    """A project, a home and an outside dir, none of them under the temp dirs
    (those are writable in every sandbox and would prove nothing)."""
    home = scratch / "home"
    project = scratch / "proj"
    outside = scratch / "outside"
    for d in (home, project, outside):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return {"home": home, "project": project, "outside": outside, "scratch": scratch}


def load_rendered(nix, world, options: dict) -> tuple[str, config.Options, policy.Policy]:
    text = nix.render(options)
    # As the module links it: $DEVENV_ROOT/.devenv/peninsula.toml
    where = world["project"] / ".devenv" / "peninsula.toml"
    opts = parse_options(text, str(where))
    box = Sandbox.from_options(opts, project=str(world["project"]))
    return text, opts, box.policy()


def verdicts(pol: policy.Policy, paths) -> dict[str, bool]:
    return {str(p): policy.decide_write(pol, str(p)).allow for p in paths}


def test_empty_options_give_the_plain_project_policy(nix, world):
    text, opts, pol = load_rendered(nix, world, {})
    assert tomllib.loads(text) == {
        "include": [], "write": [], "protect": [], "read_only": False, "hardlinked_writes": False,
    }
    assert opts.write == () and opts.protect == () and not opts.read_only and opts.log is None
    h, p, o = world["home"], world["project"], world["outside"]
    assert verdicts(pol, [p / "src/main.py", h / ".cache/pip/x", h / ".bashrc", o / "x", "/etc/passwd", "/tmp/t"]) == {
        str(p / "src/main.py"): True,
        str(h / ".cache/pip/x"): False,
        str(h / ".bashrc"): False,
        str(o / "x"): False,
        "/etc/passwd": False,
        "/tmp/t": True,
    }
    assert not pol.hardlinked_writes


def test_allow_write_home_and_tilde_reach_peninsula_unexpanded(nix, world):
    h, p = world["home"], world["project"]
    text, opts, pol = load_rendered(nix, world, {
        "allowWrite": ["$HOME/.cache/pip", "~/.npm", "${HOME}/.cache/go-build"],
        "root": str(p),
    })
    doc = tomllib.loads(text)
    # Nix did not expand anything: peninsula does, when the command starts.
    assert doc["write"] == ["$HOME/.cache/pip", "~/.npm", "${HOME}/.cache/go-build"]
    assert opts.write == (str(h / ".cache/pip"), str(h / ".npm"), str(h / ".cache/go-build"))
    assert verdicts(pol, [h / ".cache/pip/wheels/x", h / ".npm/_cacache/y", h / ".cache/go-build/z",
                          h / ".cache/other", h / ".profile", p / "a"]) == {
        str(h / ".cache/pip/wheels/x"): True,
        str(h / ".npm/_cacache/y"): True,
        str(h / ".cache/go-build/z"): True,
        str(h / ".cache/other"): False,
        str(h / ".profile"): False,
        str(p / "a"): True,
    }


def test_protect_globs_negation_and_relative_paths(nix, world):
    h, p = world["home"], world["project"]
    text, opts, pol = load_rendered(nix, world, {
        "allowWrite": ["$HOME"],
        "protect": ["src/generated/*", "!src/generated/keep.txt", "~/.aws", ".git/hooks"],
        "root": str(p),
    })
    assert tomllib.loads(text)["protect"] == [
        f"{p}/src/generated/*", f"!{p}/src/generated/keep.txt", "~/.aws", f"{p}/.git/hooks",
    ]
    assert opts.protect == (
        f"{p}/src/generated/*", f"!{p}/src/generated/keep.txt", f"{h}/.aws", f"{p}/.git/hooks",
    )
    assert verdicts(pol, [
        p / "src/generated/api.py", p / "src/generated/keep.txt", p / "src/main.py",
        p / ".git/hooks/pre-commit", p / ".git/config",
        h / ".aws/credentials", h / "notes.txt", h / ".bashrc", h / ".ssh/authorized_keys",
    ]) == {
        str(p / "src/generated/api.py"): False,
        str(p / "src/generated/keep.txt"): True,
        str(p / "src/main.py"): True,
        str(p / ".git/hooks/pre-commit"): False,
        str(p / ".git/config"): True,
        str(h / ".aws/credentials"): False,
        str(h / "notes.txt"): True,
        str(h / ".bashrc"): False,  # shipped protection stays
        str(h / ".ssh/authorized_keys"): False,
    }


def test_relative_paths_without_root_follow_peninsulas_rule(nix, world):
    # Rendered on its own (no root), a relative path stays relative and the
    # loader takes it relative to the file's directory.
    _, opts, _ = load_rendered(nix, world, {"protect": ["gen"]})
    assert opts.protect == (str(world["project"] / ".devenv" / "gen"),)


def test_read_only_and_hardlinked_writes(nix, world):
    h, p = world["home"], world["project"]
    text, opts, pol = load_rendered(nix, world, {
        "readOnly": True, "hardlinkedWrites": True, "allowWrite": ["out"], "root": str(p),
    })
    assert opts.read_only and opts.hardlinked_writes
    assert pol.hardlinked_writes
    assert verdicts(pol, [p / "src/x", p / "out/build.o", "/tmp/x", "/dev/null", h / "x"]) == {
        str(p / "src/x"): False,
        str(p / "out/build.o"): True,
        "/tmp/x": True,
        "/dev/null": True,
        str(h / "x"): False,
    }


def test_log_is_rendered_and_expanded(nix, world):
    _, opts, _ = load_rendered(nix, world, {"log": "$HOME/denials.jsonl"})
    assert opts.log == str(world["home"] / "denials.jsonl")


def test_profiles_render_to_include(nix, world):
    profiles = world["home"] / ".config" / "peninsula" / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "mycache.toml").write_text('description = "test"\nwrite = ["~/.cache/mycache"]\n')
    h = world["home"]
    text, opts, pol = load_rendered(nix, world, {"profiles": ["mycache"]})
    assert tomllib.loads(text)["include"] == ["mycache"]
    assert str(h / ".cache/mycache") in opts.write
    assert policy.decide_write(pol, str(h / ".cache/mycache/blob")).allow


WEIRD = [
    'quote"in',
    "back\\slash",
    "tab\there",
    "new\nline",
    "cr\rret",
    "bell\x07esc\x1b",  # no "[": a writable root with glob characters is a glob
    "del\x7f",
    "é-ünï-çødé",
    "日本語",
    "emoji-🐍",
    "dollar-${not-nix}",
    "two''quotes",
    "form\x0cfeed\x08bs",
    "[glob-ish]",
]


def test_strings_needing_escapes_survive_exactly(nix, world):
    o = world["outside"]
    dirs = [str(o / name) for name in WEIRD]
    text, opts, pol = load_rendered(nix, world, {"allowWrite": dirs[:7], "protect": dirs[7:]})
    # Only printable characters and valid escapes reach the file.
    assert not any(ord(c) < 0x20 and c != "\n" or ord(c) == 0x7F for c in text)
    assert tomllib.loads(text)["write"] == dirs[:7]
    assert tomllib.loads(text)["protect"] == dirs[7:]
    assert opts.write == tuple(os.path.normpath(d) for d in dirs[:7])
    assert opts.protect == tuple(os.path.normpath(d) for d in dirs[7:])
    for d in dirs[:7]:
        assert policy.decide_write(pol, d + "/file").allow, repr(d)
    assert not policy.decide_write(pol, str(o / "plain")).allow


def test_every_control_character_is_escaped(nix):
    chars = "".join(chr(c) for c in list(range(1, 32)) + [127])
    text = nix.render({"allowWrite": ["/x" + chars + "y"]})
    line = next(line for line in text.splitlines() if line.startswith("write = "))
    assert line.isprintable()
    assert tomllib.loads(text)["write"] == ["/x" + chars + "y"]
    assert parse_options(text, "/p/x.toml").write == ("/x" + chars + "y",)


@pytest.mark.parametrize("options, message", [
    ({"allowWrites": ["/x"]}, "unknown option(s) allowWrites"),
    ({"enable": True}, "unknown option(s) enable"),
    ({"allowWrite": "/x"}, "allowWrite must be a list of strings"),
    ({"allowWrite": [""]}, "allowWrite has an empty path"),
    ({"allowWrite": ["!/x"]}, "negation is only for protect"),
    ({"protect": ["!"]}, "names no path"),
    ({"readOnly": "yes"}, "readOnly must be true or false"),
    ({"profiles": ["../evil"]}, "is not a profile name"),
    ({"profiles": ["x.toml"]}, "is not a profile name"),
    ({"log": ""}, "log must be a non-empty string"),
    ({"root": "/a$b", "protect": ["x"]}, "contains \"$\""),
    ({"root": "rel", "protect": ["x"]}, "root must be an absolute path"),
])
def test_bad_options_are_errors_not_silence(nix, options, message):
    err = nix.eval_error(f"import {NIX_DIR}/render-policy.nix {nix.arg_file(options)}")
    assert "peninsula sandbox options" in err and message in err, err


def test_loader_would_catch_a_typo_the_renderer_let_through(world):
    # The guard behind the guard: peninsula itself refuses unknown keys.
    with pytest.raises(ConfigError, match="unknown key 'read_onyl'"):
        parse_options("read_onyl = true\n", str(world["project"] / "x.toml"))


# --- the devenv module, evaluated with a stand-in for nixpkgs --------------------

STUB = r"""
{ module, sandbox, root ? "/proj" }:
let
  drv = name: extra: { type = "derivation"; inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}"; } // extra;
  lib = {
    types = {
      listOf = t: { name = "listOf"; elem = t; }; str = { name = "str"; }; bool = { name = "bool"; };
      nullOr = t: { name = "nullOr"; elem = t; }; package = { name = "package"; };
    };
    mkOption = o: o // { _type = "option"; };
    mkEnableOption = d: { _type = "option"; type = lib.types.bool; default = false;
                          description = "Whether to enable ${d}."; };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    literalExpression = t: { _type = "literalExpression"; text = t; };
    getExe = p: "${p}/bin/${p.meta.mainProgram}";
    hiPrio = p: p // { meta = (p.meta or { }) // { priority = -10; }; };
    hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
    optionalAttrs = c: a: if c then a else { };
    stringToCharacters = s: builtins.genList (i: builtins.substring i 1 s) (builtins.stringLength s);
  };
  pkgs = {
    bash = drv "bash" { };
    runtimeShell = "/nix/store/00000000000000000000000000000000-bash/bin/bash";
    writeScript = name: text: drv name { inherit text; };
    writeShellScript = name: text: drv name { inherit text; };
    writeTextFile = a: drv a.name a;
    callPackage = f: a: throw "stub: the test always sets sandbox.package";
  };
in
import module { inherit lib pkgs; config = { inherit sandbox; devenv.root = root; }; }
"""

PACKAGE = '{ type = "derivation"; name = "peninsula"; outPath = "/nix/store/11111111111111111111111111111111-peninsula"; meta.mainProgram = "peninsula"; }'


@pytest.fixture(scope="module")
def module_eval(nix, tmp_path_factory):
    stub = tmp_path_factory.mktemp("stub") / "stub.nix"
    stub.write_text(STUB)

    def evaluate(sandbox: dict, body: str):
        expr = (
            f"let sandbox = {nix.arg_file(sandbox)} // {{ package = {PACKAGE}; }};\n"
            f"    m = import {stub} {{ module = {NIX_DIR}/devenv-module.nix; inherit sandbox; }};\n"
            f"in {body}"
        )
        return nix.eval(expr)

    return evaluate


ALL_DEFAULTS = {"enable": True, "allowWrite": [], "protect": [], "readOnly": False,
                "hardlinkedWrites": False, "log": None, "profiles": []}


def test_module_declares_exactly_the_table_plus_enable_and_package(nix, module_eval):
    table = nix.eval(f"builtins.attrNames (import {NIX_DIR}/options.nix).options")
    got = module_eval(ALL_DEFAULTS, """
      builtins.mapAttrs (n: o: { type = o.type.name; described = (o.description or "") != "";
                                 hasDefault = o ? default; }) (builtins.removeAttrs m.options.sandbox [ "package" ])
      // { package = { type = m.options.sandbox.package.type.name;
                       described = m.options.sandbox.package.description != ""; hasDefault = true; }; }
    """)
    assert set(got) == set(table) | {"enable", "package"}
    for name, o in got.items():
        assert o["described"] and o["hasDefault"], name
    assert got["allowWrite"]["type"] == "listOf" and got["protect"]["type"] == "listOf"
    assert got["readOnly"]["type"] == "bool" and got["hardlinkedWrites"]["type"] == "bool"
    assert got["enable"]["type"] == "bool" and got["package"]["type"] == "package"
    # Only apply is added to devenv's own options: a second type or default
    # would be a "declared twice" error in the module system.
    for name in ("scripts", "tasks", "processes"):
        keys = module_eval(ALL_DEFAULTS, f"builtins.attrNames m.options.{name}")
        assert set(keys) == {"_type", "apply"}, (name, keys)


def test_module_renders_the_same_policy_file_and_links_it(nix, module_eval):
    options = dict(ALL_DEFAULTS, allowWrite=["$HOME/.cache/pip"], protect=["secret/*"])
    got = module_eval(options, "m.config")
    assert got["_type"] == "if" and got["condition"] is True
    content = got["content"]
    assert content["packages"] == ["/nix/store/11111111111111111111111111111111-peninsula"]
    # builtins.toFile is content-addressed: the same path means the same text.
    render_args = {k: v for k, v in options.items() if k != "enable"} | {"root": "/proj"}
    expected = nix.eval(
        f'builtins.toFile "peninsula-devenv.toml" (import {NIX_DIR}/render-policy.nix {nix.arg_file(render_args)})'
    )
    assert f'ln -sfn {expected} "$DEVENV_ROOT/.devenv/peninsula.toml"' in content["enterShell"]
    # and that text anchors the relative protect beneath the project root
    text = nix.render(render_args)
    assert tomllib.loads(text)["protect"] == ["/proj/secret/*"]


def test_module_wraps_scripts_tasks_and_processes(module_eval):
    got = module_eval(ALL_DEFAULTS, r"""
      let
        s = m.options.scripts.apply { hello = { exec = "echo hi"; scriptPackage = { outPath = "/nix/store/orig-hello"; }; }; };
        t = m.options.tasks.apply {
          "app:build" = { exec = "make"; command = "/nix/store/orig-build"; statusCommand = "/nix/store/orig-status";
                          config = { command = "/nix/store/orig-build"; status = "/nix/store/orig-status"; name = "app:build"; }; };
          "app:noop" = { exec = null; command = null; statusCommand = null; config = { command = null; status = null; }; };
          "devenv:enterShell" = { command = "/nix/store/orig-enter"; config.command = "/nix/store/orig-enter"; };
        };
        p = m.options.processes.apply { web = { exec = "python -m http.server 8000"; process-compose = { }; }; };
        psh = builtins.elemAt (builtins.split " " p.web.exec) 4;
      in {
        script = s.hello.scriptPackage.text; scriptBin = s.hello.scriptPackage.destination;
        scriptPrio = s.hello.scriptPackage.meta.priority;
        task = t."app:build".command.text; taskCfg = t."app:build".config.command.text;
        status = t."app:build".statusCommand.text; statusCfg = t."app:build".config.status.text;
        taskName = t."app:build".config.name;
        noop = t."app:noop".command; devenvTask = t."devenv:enterShell".command;
        process = p.web.exec; processKeys = builtins.attrNames p.web;
      }
    """)
    confine = "/nix/store/00000000000000000000000000000000-peninsula-devenv-confine"
    assert got["script"].splitlines()[1] == f'exec {confine} /nix/store/orig-hello/bin/hello "$@"'
    assert got["scriptBin"] == "/bin/hello" and got["scriptPrio"] < 0
    assert got["task"].splitlines()[1] == f'exec {confine} /nix/store/orig-build "$@"'
    assert got["taskCfg"] == got["task"]
    assert got["status"].splitlines()[1] == f'exec {confine} /nix/store/orig-status "$@"'
    assert got["statusCfg"] == got["status"]
    assert got["taskName"] == "app:build"
    assert got["noop"] is None
    assert got["devenvTask"] == "/nix/store/orig-enter"
    assert got["process"].startswith(f"exec {confine} /nix/store/")
    assert got["process"].endswith("-process-web")
    assert set(got["processKeys"]) == {"exec", "process-compose"}


def test_module_disabled_changes_nothing(module_eval):
    got = module_eval(dict(ALL_DEFAULTS, enable=False), r"""
      { cond = m.config.condition;
        s = m.options.scripts.apply { a = { exec = "x"; scriptPackage = "/nix/store/a"; }; };
        p = m.options.processes.apply { w = { exec = "serve"; }; }; }
    """)
    assert got == {"cond": False, "s": {"a": {"exec": "x", "scriptPackage": "/nix/store/a"}}, "p": {"w": {"exec": "serve"}}}


# --- the launcher, for real: peninsula run under the rendered policy -------------


def make_launcher(nix, who, options: dict, root: str) -> tuple[Path, Path]:
    """Render the policy and peninsula-devenv-confine with this machine's
    paths, the way the module does with store paths."""
    policy_file = who.write(who.base / "peninsula-devenv.toml", nix.render(options))
    peninsula = who.write(who.base / "peninsula", f'#!/bin/sh\nexec {SYSTEM_PYTHON} -m peninsula "$@"\n')
    os.chmod(peninsula, 0o755)
    text = nix.eval(
        f"import {NIX_DIR}/confine.nix {nix.arg_file({'shell': '/bin/bash', 'peninsula': str(peninsula), 'policy': str(policy_file), 'root': root})}"
    )
    launcher = who.write(who.base / "peninsula-devenv-confine", text)
    os.chmod(launcher, 0o755)
    return launcher, policy_file


def test_launcher_confines_a_command(nix, who):
    project = who.mkdir(who.base / "proj")
    cache = who.mkdir(who.base / "cache")
    outside = who.mkdir(who.base / "outside")
    launcher, _ = make_launcher(nix, who, {
        "allowWrite": [str(cache)], "protect": ["src/generated"], "root": str(project),
        "log": str(who.base / "denials.jsonl"),
    }, root=str(project))
    who.mkdir(project / "src")
    who.mkdir(project / "src/generated")
    script = (
        f"echo in > {project}/inside; echo c > {cache}/c; "
        f"echo g > {project}/src/generated/g; echo gen=$?; "
        f"echo out > {outside}/x; echo out=$?"
    )
    proc = who.run([launcher, "sh", "-c", script], cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert (project / "inside").read_text() == "in\n"
    assert (cache / "c").read_text() == "c\n"
    assert not (project / "src/generated/g").exists()
    assert not (outside / "x").exists()
    assert b"gen=2" in proc.stdout or b"gen=1" in proc.stdout
    assert b"out=2" in proc.stdout or b"out=1" in proc.stdout
    assert f"denied open of {outside}/x".encode() in proc.stderr


def test_launcher_takes_devenv_root_when_no_root_was_baked(nix, who):
    project = who.mkdir(who.base / "proj")
    outside = who.mkdir(who.base / "outside")
    launcher, _ = make_launcher(nix, who, {"log": str(who.base / "denials.jsonl")}, root="")
    script = f"echo in > {project}/inside; echo out > {outside}/x; echo out=$?"
    proc = who.run([launcher, "sh", "-c", script], cwd=who.base, env={"DEVENV_ROOT": str(project)})
    assert proc.returncode == 0, proc.stderr
    assert (project / "inside").exists() and not (outside / "x").exists()
    # No root at all: refuse, never run unconfined.
    proc = who.run([launcher, "sh", "-c", f"echo out > {outside}/y"], cwd=who.base)
    assert proc.returncode == 125
    assert b"refusing to run sh unconfined" in proc.stderr
    assert not (outside / "y").exists()


def test_launcher_inside_peninsula_runs_under_the_outer_supervisor(nix, who):
    # A script that calls a task: the inner launcher must not fail with EBUSY
    # (one notify listener per process tree); the outer sandbox still holds.
    project = who.mkdir(who.base / "proj")
    outside = who.mkdir(who.base / "outside")
    launcher, _ = make_launcher(nix, who, {"log": str(who.base / "denials.jsonl")}, root=str(project))
    inner = f"{launcher} sh -c 'echo in > {project}/inner; echo out > {outside}/x; echo out=$?'"
    proc = who.run([launcher, "sh", "-c", inner], cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert (project / "inner").exists()
    assert not (outside / "x").exists()
    assert b"out=" in proc.stdout and b"out=0" not in proc.stdout


def test_launcher_ignores_a_forged_sandbox_variable(nix, who):
    # PENINSULA_SANDBOX without a seccomp filter is a lie: confine anyway.
    project = who.mkdir(who.base / "proj")
    outside = who.mkdir(who.base / "outside")
    launcher, _ = make_launcher(nix, who, {"log": str(who.base / "denials.jsonl")}, root=str(project))
    proc = who.run([launcher, "sh", "-c", f"echo out > {outside}/x"], cwd=project,
                   env={"PENINSULA_SANDBOX": "run", "PENINSULA_SESSION": "forged"})
    assert not (outside / "x").exists(), proc.stderr
    assert f"denied open of {outside}/x".encode() in proc.stderr


# --- package.nix and flake.nix, with a stand-in for nixpkgs -----------------------

PKG_STUB = r"""
let
  lib = {
    getLib = p: p;
    removePrefix = pre: s:
      if builtins.substring 0 (builtins.stringLength pre) s == pre
      then builtins.substring (builtins.stringLength pre) (-1) s else s;
    elem = builtins.elem;
    hasPrefix = p: s: builtins.substring 0 (builtins.stringLength p) s == p;
    hasSuffix = x: s: let n = builtins.stringLength s; m = builtins.stringLength x; in
      n >= m && builtins.substring (n - m) m s == x;
    licenses = { bsd0 = "0BSD"; mit = "MIT"; };
    platforms = { linux = [ "x86_64-linux" ]; };
  };
  python3Packages = {
    buildPythonApplication = a: a; buildPythonPackage = a: a; fetchPypi = a: a;
    hatchling = "hatchling"; setuptools = "setuptools"; wheel = "wheel"; tomlkit = "tomlkit";
  };
in
import PACKAGE_NIX { inherit lib python3Packages; libseccomp = "/nix/store/22222222222222222222222222222222-libseccomp"; }
"""


def test_package_expression_shape(nix, tmp_path):
    stub = tmp_path / "pkg.nix"
    stub.write_text(PKG_STUB.replace("PACKAGE_NIX", str(NIX_DIR / "package.nix")))
    got = nix.eval(f"""
      let p = import {stub}; in {{
        inherit (p) pname version pyproject build-system pythonImportsCheck;
        deps = map (d: d.pname or d) p.dependencies;
        pins = map (d: {{ inherit (d) pname version pyproject; src = d.src; patch = d.postPatch or ""; }})
                   (builtins.filter builtins.isAttrs p.dependencies);
        mainProgram = p.meta.mainProgram;
      }}
    """)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert got["pname"] == "peninsula" and got["pyproject"] is True
    assert got["version"] == pyproject["project"]["version"]
    assert got["build-system"] == ["setuptools"]
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta"
    # Every runtime dependency of pyproject.toml, and nothing else.
    wanted = sorted(d.split(">")[0].split("=")[0].split("<")[0].strip() for d in pyproject["project"]["dependencies"])
    assert sorted(got["deps"]) == wanted
    assert got["mainProgram"] == "peninsula"
    pins = {p["pname"]: p for p in got["pins"]}
    # The sha256 PyPI publishes for these sdists (pypi.org/simple/<name>/).
    assert pins["landlockpy"]["src"] == {
        "pname": "landlockpy", "version": "0.2.0", "hash": "sha256-KpFdtZosGXDRgfnCv/eG1gQNj5EFOA2mQ5D1/mG0FI0="}
    assert pins["pyseccomp"]["src"] == {
        "pname": "pyseccomp", "version": "0.1.2", "hash": "sha256-DVTvrPcb2kvf0hIz9URLcwy+z1k9YC95bmQSqGgiWL0="}
    assert all(p["pyproject"] for p in pins.values())
    # The library path is pinned, and the text it replaces is really in pyseccomp.
    patch = pins["pyseccomp"]["patch"]
    assert "--replace-fail 'ctypes.util.find_library(\"seccomp\")'" in patch
    assert "/nix/store/22222222222222222222222222222222-libseccomp/lib/libseccomp.so.2" in patch
    import importlib.metadata

    import pyseccomp

    assert importlib.metadata.version("pyseccomp") == pins["pyseccomp"]["version"], (
        "the venv's pyseccomp differs from the one nix/package.nix pins: re-check the patch and the hash"
    )
    assert 'ctypes.util.find_library("seccomp")' in Path(pyseccomp.__file__).read_text()


def test_package_source_holds_only_what_the_build_needs(nix, tmp_path):
    # A private store in a temp dir, so builtins.path really copies the
    # filtered tree (dummy:// only computes its name).
    stub = tmp_path / "pkg.nix"
    stub.write_text(PKG_STUB.replace("PACKAGE_NIX", str(NIX_DIR / "package.nix")))
    store_root = tmp_path / "store-root"
    proc = subprocess.run(
        [nix.exe, "--read-write-mode", "--store", str(store_root), "--eval", "--strict", "--json",
         "--expr", f'"${{(import {stub}).src}}"'],
        cwd=REPO, env=nix.env, capture_output=True, text=True, timeout=300,
    )
    try:
        assert proc.returncode == 0, proc.stderr
        src = store_root / json.loads(proc.stdout).lstrip("/")
        names = {str(p.relative_to(src)) for p in src.rglob("*")}
        assert {"pyproject.toml", "setup.py", "README.md", "peninsula", "peninsula/__init__.py", "peninsula/cli/main.py",
                "peninsula/supervisor/_fastpath_c/module.c"} <= names
        assert not {n for n in names if n.split("/")[0] not in ("pyproject.toml", "setup.py", "README.md", "peninsula")}
        assert not {n for n in names if "__pycache__" in n or n.endswith((".pyc", ".so"))}
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(store_root)], check=False)


FLAKE_STUB = r"""
let
  flake = import FLAKE_NIX;
  pkgs = {
    stdenv.hostPlatform.system = "x86_64-linux";
    callPackage = f: a: { type = "derivation"; name = "peninsula";
      outPath = "/nix/store/33333333333333333333333333333333-peninsula"; fn = f; };
  };
  nixpkgs = {
    lib.genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    legacyPackages.x86_64-linux = pkgs;
  };
  self = flake.outputs { inherit self nixpkgs; };
in { inherit flake self; }
"""


def test_flake_outputs(nix, tmp_path):
    stub = tmp_path / "flake-stub.nix"
    stub.write_text(FLAKE_STUB.replace("FLAKE_NIX", str(NIX_DIR / "flake.nix")))
    got = nix.eval(f"""
      let s = import {stub}; in {{
        inputs = builtins.attrNames s.flake.inputs;
        outputs = builtins.attrNames s.self;
        packages = builtins.attrNames s.self.packages.x86_64-linux;
        pkgFn = toString s.self.packages.x86_64-linux.default.fn;
        app = s.self.apps.x86_64-linux.peninsula;
        defaultApp = s.self.apps.x86_64-linux.default.program;
        module = toString s.self.devenvModules.default;
      }}
    """)
    assert got["inputs"] == ["nixpkgs"]
    assert {"packages", "apps", "devenvModules"} <= set(got["outputs"])
    assert {"default", "peninsula"} <= set(got["packages"])
    assert got["pkgFn"] == str(NIX_DIR / "package.nix")
    assert got["app"] == {"type": "app", "program": "/nix/store/33333333333333333333333333333333-peninsula/bin/peninsula"}
    assert got["defaultApp"] == got["app"]["program"]
    assert got["module"] == str(NIX_DIR / "devenv-module.nix")
    # devenv.yaml `imports: - peninsula/nix` loads nix/devenv.nix: the same module.
    assert nix.eval(f"map toString (import {NIX_DIR}/devenv.nix).imports") == [str(NIX_DIR / "devenv-module.nix")]


@pytest.mark.parametrize("body, message", [
    ('(m.options.scripts.apply { s = { exec = "x"; }; }).s', "scripts.s has no scriptPackage"),
    ('(m.options.tasks.apply { "a:b" = { exec = "x"; }; })."a:b"', "tasks.a:b has no command"),
])
def test_module_refuses_what_it_cannot_wrap(nix, module_eval, body, message):
    # An unknown devenv layout is an evaluation error, never an unconfined command.
    with pytest.raises(AssertionError, match="refusing to leave it unconfined"):
        module_eval(ALL_DEFAULTS, body)
    with pytest.raises(AssertionError, match=re.escape(message)):
        module_eval(ALL_DEFAULTS, body)
