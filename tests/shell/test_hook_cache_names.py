"""The hooks keep (before a project) every variable the supervisor points
at a project's cache or socket directory: the names they are given are
defaults.CACHE_ENV's and socketdirs.SOCKET_ENV's."""

from peninsula.shell import shells as cmd_shell
from peninsula.config import defaults, socketdirs


def test_hook_cache_names_are_the_cache_env_names():
    assert cmd_shell.CACHE_NAMES.split() == [name for name, _ in defaults.CACHE_ENV + socketdirs.SOCKET_ENV]


def test_each_hook_gets_the_names():
    for shell in ("bash", "zsh", "fish"):
        text = cmd_shell.hook_text(shell)
        assert "@CACHE_NAMES@" not in text
        assert f"for name in {cmd_shell.CACHE_NAMES}" in text
