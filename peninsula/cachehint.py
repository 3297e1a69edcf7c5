"""Which shipped profile would allow a denied write to a shared tool cache.

A denial notice for ~/.npm, ~/.cache/pip, ... says which profile shares it:
the project's own cache is used by default, sharing the user's is a choice.
"""

from __future__ import annotations

import glob
import os

from .config import PROFILE_DIR, ConfigError, expand_path, parse_options
from .policy import is_beneath

_shipped: list[tuple[int, str, str]] | None = None


def _profiles() -> list[tuple[int, str, str]]:
    """(how many paths the profile allows, write path, profile name) of
    every shipped profile, narrowest first (npm before caches, which
    includes it)."""
    global _shipped
    if _shipped is None:
        _shipped = []
        for path in sorted(glob.glob(os.path.join(PROFILE_DIR, "*.toml"))):
            name = os.path.basename(path)[: -len(".toml")]
            try:
                with open(path, encoding="utf-8") as handle:
                    options = parse_options(handle.read(), path)
            except (OSError, ConfigError):
                continue
            for raw in options.write:
                _shipped.append((len(options.write), os.path.realpath(expand_path(raw, PROFILE_DIR)), name))
        _shipped.sort()
    return _shipped


def profile_for(path: str) -> str | None:
    """The shipped profile whose paths contain path, or None."""
    for _, root, name in _profiles():
        if is_beneath(path, root):
            return name
    return None
