"""Named profiles: shipped ones, user ones with includes, --profile,
`peninsula profiles`, and config errors that name file and line."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

SHIPPED = ("npm", "pip", "cargo", "go", "git")
PROFILE_DIR = Path(__file__).resolve().parents[2] / "peninsula" / "config" / "profiles"


def _home(who):
    """A home of the identity's own inside its scratch dir (not the real ~)."""
    home = who.mkdir(who.base / "home")
    return home, {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def test_every_shipped_profile_has_a_description_and_a_risk_comment():
    for name in SHIPPED:
        text = (PROFILE_DIR / f"{name}.toml").read_text()
        assert re.search(r'^description = ".+"$', text, re.M), name
        assert re.search(r"^# Risk: .+", text, re.M), name


def test_profiles_lists_them_with_descriptions(who):
    home, env = _home(who)
    proc = who.peninsula("profiles", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    for name in SHIPPED:
        assert any(re.match(rf"^{name}\s+\S", line) for line in lines), (name, lines)
    assert any("~/.npm" in line for line in lines)


@pytest.mark.parametrize("profile,rel", [("npm", ".npm"), ("pip", ".cache/pip"), ("cargo", ".cargo/registry"),
                                         ("go", "go/pkg/mod"), ("git", ".cache/git")])
def test_a_profile_allows_its_cache_and_only_with_it(who, profile, rel):
    home, env = _home(who)
    project = who.mkdir(who.base / "p")
    cache = home / rel
    cache.mkdir(parents=True)
    for d in [cache, *cache.relative_to(home).parents]:
        os.chown(home / d, who.uid, who.gid)
    write = ["sh", "-c", f"echo x > {cache}/entry; echo rc=$?"]
    denied = who.peninsula("run", "--", *write, cwd=project, env=env)
    assert b"rc=2" in denied.stdout, denied.stderr
    assert not (cache / "entry").exists()
    # The denial notice points at the profile (and says the cache is shared).
    assert f"--profile {profile}".encode() in denied.stderr
    allowed = who.peninsula("run", "--profile", profile, "--", *write, cwd=project, env=env)
    assert b"rc=0" in allowed.stdout, allowed.stderr
    assert (cache / "entry").exists()


def test_user_profile_with_includes(who):
    home, env = _home(who)
    project = who.mkdir(who.base / "p")
    profiles = who.mkdir(home / ".config")
    profiles = who.mkdir(profiles / "peninsula")
    profiles = who.mkdir(profiles / "profiles")
    extra = who.mkdir(who.base / "extra")
    (profiles / "mine.toml").write_text(
        'description = "npm plus an extra dir"\ninclude = ["npm", "./more.toml"]\nlimit_walltime = 20\n')
    (profiles / "more.toml").write_text(f'write = ["{extra}"]\n')
    for d in (home / ".npm",):
        who.mkdir(d)
    script = f"echo a > {home}/.npm/a && echo b > {extra}/b; echo rc=$?"
    without = who.peninsula("run", "--", "sh", "-c", script, cwd=project, env=env)
    assert b"rc=2" in without.stdout
    proc = who.peninsula("run", "--profile", "mine", "--", "sh", "-c", script, cwd=project, env=env)
    assert b"rc=0" in proc.stdout, proc.stderr
    assert (extra / "b").exists() and (home / ".npm" / "a").exists()
    listing = who.peninsula("profiles", env=env).stdout.decode()
    assert re.search(r"^mine\s+npm plus an extra dir$", listing, re.M)


def test_profile_from_a_path_and_config_both(who):
    home, env = _home(who)
    project = who.mkdir(who.base / "p")
    a, b = who.mkdir(who.base / "a"), who.mkdir(who.base / "b")
    (who.base / "pa.toml").write_text(f'write = ["{a}"]\n')
    (who.base / "cb.toml").write_text(f'write = ["{b}"]\nsetenv = {{ FROM_CONFIG = "yes" }}\n')
    proc = who.peninsula("run", "--profile", str(who.base / "pa.toml"), "--config", str(who.base / "cb.toml"), "--",
                         "sh", "-c", f"echo > {a}/x && echo > {b}/x && echo $FROM_CONFIG", cwd=project, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"yes\n"


def test_include_cycle_names_file_and_line(who):
    home, env = _home(who)
    project = who.mkdir(who.base / "p")
    (who.base / "a.toml").write_text('description = "a"\n\ninclude = ["b.toml"]\n')
    (who.base / "b.toml").write_text('include = ["./a.toml"]\n')
    proc = who.peninsula("run", "--config", str(who.base / "a.toml"), "--", "true", cwd=project, env=env)
    assert proc.returncode == 125
    assert f"{who.base}/b.toml:1: include cycle: a.toml -> b.toml -> a.toml".encode() in proc.stderr, proc.stderr


def test_unknown_key_and_profile_are_errors(who):
    home, env = _home(who)
    project = who.mkdir(who.base / "p")
    (who.base / "bad.toml").write_text('description = "x"\nwrite = []\nwrtie = ["~"]\n')
    proc = who.peninsula("run", "--config", str(who.base / "bad.toml"), "--", "true", cwd=project, env=env)
    assert proc.returncode == 125
    assert f"{who.base}/bad.toml:3: unknown key 'wrtie'".encode() in proc.stderr
    (who.base / "badval.toml").write_text('limit_as = "lots"\n')
    proc = who.peninsula("run", "--config", str(who.base / "badval.toml"), "--", "true", cwd=project, env=env)
    assert proc.returncode == 125 and f"{who.base}/badval.toml:1: not a size".encode() in proc.stderr
    proc = who.peninsula("run", "--profile", "no-such-profile", "--", "true", cwd=project, env=env)
    assert proc.returncode == 125
    assert b"no profile named 'no-such-profile'" in proc.stderr and b"npm" in proc.stderr
    (who.base / "incfile.toml").write_text('description = "x"\ninclude = ["./missing.toml"]\n')
    proc = who.peninsula("run", "--config", str(who.base / "incfile.toml"), "--", "true", cwd=project, env=env)
    assert proc.returncode == 125
    assert f"{who.base}/incfile.toml:2: cannot include ./missing.toml: no such file".encode() in proc.stderr
    (who.base / "inc.toml").write_text('\ninclude = ["nope"]\n')
    proc = who.peninsula("run", "--config", str(who.base / "inc.toml"), "--", "true", cwd=project, env=env)
    assert proc.returncode == 125 and f"{who.base}/inc.toml:2: no profile named 'nope'".encode() in proc.stderr


def test_config_can_hold_run_options(who):
    home, env = _home(who)
    project = who.mkdir(who.base / "p")
    (who.base / "ci.toml").write_text('limit_walltime = 1\nunshare_net = true\nclear_env = true\nkeep_env = ["HOME"]\n')
    proc = who.peninsula("run", "--config", str(who.base / "ci.toml"), "--report", str(who.base / "r.json"), "--",
                         "sh", "-c", "env; ip -o link | wc -l; sleep 20", cwd=project, env=env)
    assert proc.returncode == 124
    out = proc.stdout.decode().split()
    assert f"HOME={home}" in out and not any(x.startswith("USER=") for x in out)
    assert out[-1] == "1"  # only loopback
