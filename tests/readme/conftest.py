"""The shell fixtures (a fake home, real shells in tmux) for README's shell examples."""

from shell.conftest import home, term_factory  # noqa: F401  (fixtures)
