"""Every `peninsula` command: its name, the module that registers it
(peninsula/cli/<module>.py) and its line in `peninsula --help`.

A command line that names a command imports only that command's module, and
`peninsula --help` imports none: it is printed from this table. Standard
library only, nothing at import time (start-up time is felt on every shell
start and every prompt).
"""

# name: (module, summary), in the order `peninsula --help` lists them.
REGISTRY = {
    "run": ("run", "confine one command and everything it starts"),
    "shell": ("shell", "start your shell under the supervisor (the hooks do this for you)"),
    "hook": ("shell", "print the shell hook to eval in your rc file"),
    "prompt": ("shell", "print the prompt marker, e.g. [peninsula: myproj] (for starship and friends)"),
    "status": ("status", "say what is confined in this session and what is allowed"),
    "check": ("status", "say whether a write to PATH would pass, and why"),
    "log": ("log", "show recent denials"),
    "trust": ("trust", "apply a project's .peninsula.toml allowances (recorded by content hash)"),
    "allow": ("trust", "allow confined processes to write PATH (edits the TOML, comments kept)"),
    "ps": ("join", "list live supervised shell sessions"),
    "exec": ("join", "run a command inside a live session, under its current policy"),
    "profiles": ("profiles", "list the named profiles for `peninsula run --profile NAME`"),
    "doctor": ("doctor", "say what this kernel lets peninsula enforce"),
}
# Which module registers each command, and the modules in --help's order.
MODULE_OF = {name: module for name, (module, _) in REGISTRY.items()}
COMMANDS = tuple(dict.fromkeys(MODULE_OF.values()))


def summary(name: str) -> str:
    return REGISTRY[name][1]
