"""sudo by its full path (/usr/bin/sudo) typed at a supervised shell's
prompt: through the session's shim as by name (privileged.py), outside
projects only. A script's own /usr/bin/sudo still runs without privilege
(no_new_privs), and says so."""

from __future__ import annotations

import os

import pytest

from .conftest import SHELLS, supervised
from .test_sudo import REFUSED, _lines, sudo_rule  # noqa: F401 (a fixture)


@pytest.mark.parametrize("shell", SHELLS)
def test_full_path_sudo_outside_and_inside_a_project(term_factory, sudo_rule, home, shell):  # noqa: F811
    term = term_factory(shell)
    supervised(term)
    status = "$status" if shell == "fish" else "$?"
    paths = ["/usr/bin/sudo"] + (["/bin/sudo"] if os.path.samefile("/bin/sudo", "/usr/bin/sudo") else [])
    for index, path in enumerate(paths):
        text = term.run(f"echo mark-{index}; {path} -n id -u; echo rc={status}")
        assert _lines(text, f"mark-{index}\n")[:2] == ["0", "rc=0"], text
    # The file typed, not what PATH finds now (as without peninsula).
    term.run("mkdir -p ~/fake && printf '#!/bin/sh\\necho fake-sudo\\n' > ~/fake/sudo && chmod +x ~/fake/sudo")
    term.run("set -gx PATH ~/fake $PATH" if shell == "fish" else "PATH=~/fake:$PATH")
    text = term.run(f"echo mark-f; /usr/bin/sudo -n id -u; sudo -n id -u; echo rc={status}")
    assert _lines(text, "mark-f\n")[:3] == ["0", "fake-sudo", "rc=0"], text
    # Negative control: the same program not through the session (a script's
    # own full path) has no privilege here.
    text = term.run(f"echo mark-s; sh -c '/usr/bin/sudo -n true'; echo rc={status}")
    assert "no new privileges" in text and "rc=1" in _lines(text, "mark-s\n"), text
    # Inside a project: refused with the shim's one line.
    term.run("cd proj")
    term.prompt()
    text = term.run(f"echo mark-p; /usr/bin/sudo -n true; echo rc={status}")
    after = _lines(text, "mark-p\n")
    assert after[0].startswith(f"peninsula: {REFUSED}{home / 'proj'}"), text
    assert after[1] == "rc=1", text
