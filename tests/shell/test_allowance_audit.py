"""Issue 17 class 5: no shipped allowance holds what a program later runs or trusts.

~/.local/state/nvim was writable as a whole: lazy.nvim runs
~/.local/state/nvim/lazy/pkg-cache.lua at every start and Neovim keeps its
exrc trust database (trust) there. systemd --user loads units from
$XDG_RUNTIME_DIR/systemd, and a socket put in place of the session bus's
would sit between it and every unconfined client. Each is refused inside a project; Neovim's swap,
undo and shada files still work.
"""

import os

from .conftest import supervised

NVIM = ".local/state/nvim"
CODE = (f"{NVIM}/lazy/pkg-cache.lua", f"{NVIM}/trust", f"{NVIM}/lazy/state.json")


def test_files_that_hold_code_or_trust_are_refused(term_factory, home, user):
    runtime = user.mkdir(home / "run")
    os.chmod(runtime, 0o700)
    term = term_factory("bash", env={"XDG_RUNTIME_DIR": str(runtime)})
    supervised(term)
    for rel in (".local", ".local/state", NVIM, f"{NVIM}/lazy", f"{NVIM}/swap", f"{NVIM}/shada"):
        user.mkdir(home / rel)
    units = "run/systemd"
    user.write(runtime / "bus", "")  # stands for the session bus socket
    term.run("cd proj")
    for rel in CODE:
        term.run(f"echo 'os.execute(\"touch ~/pwned\")' > ~/{rel}")
    term.run(f"mkdir ~/{units}")
    term.run("rm ~/run/bus")
    term.run(f"echo '[Service]' > ~/{NVIM}/swap/proj.swp; echo shada > ~/{NVIM}/shada/main.shada")
    for rel in CODE:
        assert not (home / rel).exists(), rel
    assert not (home / "run" / "systemd").exists()
    assert (home / "run" / "bus").exists()
    assert (home / NVIM / "swap" / "proj.swp").exists()
    assert (home / NVIM / "shada" / "main.shada").exists()
    text = term.screen()
    assert text.count("peninsula: denied") == len(CODE) + 2, text
    # Positive control: unconfined, the same writes land.
    term.run("cd ..")
    for rel in CODE:
        term.run(f"echo 'os.execute(\"touch ~/pwned\")' > ~/{rel}")
        assert (home / rel).exists(), rel
    term.run(f"mkdir ~/{units}")
    assert (home / units).is_dir()
    term.run("rm ~/run/bus")
    assert not (home / "run" / "bus").exists()
