"""An .envrc's loader variables still work for the project's own commands.

direnv runs without the project's LD_PRELOAD, LD_AUDIT and LD_LIBRARY_PATH
(test_direnv_switch_confined.py: with them it is the project's code), with
the values the shell had outside instead; so the hooks put those back on
leaving. Inside, a program that needs a library from the project's lib/
starts through the .envrc's LD_LIBRARY_PATH, and the .envrc sees (and
extends) the user's own value; after leaving, the user's value is back (or
none), and the program no longer finds its library.
"""

from __future__ import annotations

import os

import pytest

from cbuild import compile_c

from .conftest import SHELLS, supervised

LIB_C = 'const char *penllp_where(void) { return "found-through-LD_LIBRARY_PATH"; }\n'
MAIN_C = '#include <stdio.h>\nconst char *penllp_where(void);\nint main(void) { puts(penllp_where()); return 0; }\n'
ENVRC = 'export LD_LIBRARY_PATH="$PWD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n'


@pytest.fixture
def project(user, home):
    project = home / "proj"
    lib = compile_c(LIB_C, "libpenllp.so", ("-shared", "-fPIC", "-Wl,-soname,libpenllp.so"))
    # Linked by soname only: the loader finds it through LD_LIBRARY_PATH or not at all.
    program = compile_c(MAIN_C, "uses_penllp", (str(lib),))
    user.mkdir(project / "lib")
    user.mkdir(project / "bin")
    user.write(project / "lib" / "libpenllp.so", lib.read_bytes())
    os.chmod(user.write(project / "bin" / "uses-lib", program.read_bytes()), 0o755)
    user.write(project / ".envrc", ENVRC)
    for path in [project, *project.rglob("*")]:
        os.lchown(path, user.uid, user.gid)
    assert user.run(["direnv", "allow", str(project)], cwd=project, env={"HOME": str(home)}).returncode == 0
    return project


def _llp(term) -> str:
    return term.run("sh -c 'echo llp=${LD_LIBRARY_PATH-none}'").rsplit("llp=", 1)[-1].split()[0]


@pytest.mark.parametrize("users_own", ["/opt/users-own-libs", None])
@pytest.mark.parametrize("shell", SHELLS)
def test_the_envrc_library_path_reaches_the_project_and_leaves_with_it(term_factory, project, shell, users_own):
    term = term_factory(shell)
    supervised(term)
    if users_own:
        term.run(f"set -gx LD_LIBRARY_PATH {users_own}" if shell == "fish" else f"export LD_LIBRARY_PATH={users_own}")
        term.prompt()
    term.run("cd ~/proj")
    term.prompt()
    inside = _llp(term)
    assert inside == f"{project}/lib" + (f":{users_own}" if users_own else ""), term.screen()
    screen = term.run("~/proj/bin/uses-lib")
    assert "found-through-LD_LIBRARY_PATH" in screen, screen
    term.run("cd ~")
    term.prompt()
    assert _llp(term) == (users_own or "none"), term.screen()
    status = "$status" if shell == "fish" else "$?"
    screen = term.run(f"~/proj/bin/uses-lib; echo uses-lib-rc={status}")
    assert "libpenllp.so: cannot open shared object file" in screen, screen
    assert "uses-lib-rc=127" in screen, screen


@pytest.mark.parametrize("shell", SHELLS)
def test_an_envrc_that_is_no_project_keeps_direnvs_own_revert(user, term_factory, home, project, shell):
    # With `direnv = false`, ~/work's allowed .envrc is no project: the
    # shell stays unconfined there and direnv sees and reverts its loader
    # variables as it would without peninsula, also when the shell goes
    # from there straight into a project (a root) and out again.
    user.write(home / ".config" / "peninsula" / "config.toml",
               f'baseline = ["{home}"]\n[projects]\ndirenv = false\nroots = ["{project}"]\n')
    work = user.mkdir(home / "work")
    user.write(work / ".envrc", 'export LD_LIBRARY_PATH="/work-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n')
    os.lchown(work / ".envrc", user.uid, user.gid)
    assert user.run(["direnv", "allow", str(work)], cwd=work, env={"HOME": str(home)}).returncode == 0
    users_own = "/opt/users-own-libs"
    term = term_factory(shell)
    supervised(term)
    term.run(f"set -gx LD_LIBRARY_PATH {users_own}" if shell == "fish" else f"export LD_LIBRARY_PATH={users_own}")
    term.run("cd ~/work")
    term.prompt()
    assert _llp(term) == f"/work-libs:{users_own}", term.screen()
    term.run("cd ~")
    term.prompt()
    assert _llp(term) == users_own, term.screen()
    term.run("cd ~/work")
    term.prompt()
    term.run("cd ~/proj")
    term.prompt()
    assert "[peninsula: proj]" in term.run("true"), term.screen()
    assert _llp(term) == f"{project}/lib:{users_own}", term.screen()
    term.run("cd ~")
    term.prompt()
    assert _llp(term) == users_own, term.screen()
