"""Writable paths that do not exist yet: created before the sandbox starts.

A confined `mkdir -p ~/.cache/pip` must create ~/.cache first, which no
allowance covers; and Landlock can only add a rule for a path that exists.
So the missing directories an allowance needs are created here, by the user
(this runs unconfined, as the caller, with the caller's umask), unless the
allowance is protected or a glob; what cannot be created is said plainly.

leaf=True (`peninsula run`: --write and profiles name directories, "writes
beneath PATH", and Landlock needs the directory itself) creates the path as
a directory; leaf=False (the shell sandbox, whose Landlock root is the home:
an allowance there may name a file) creates only its missing parents."""

from __future__ import annotations

import glob
import os

from peninsula.policy import engine as policy


def create_missing(paths, pol: policy.Policy | None, say, leaf: bool = True) -> None:
    """Create what each allowance in paths needs. say(line) reports what
    was done; OSError propagates (the caller says why it cannot go on)."""
    for path in paths:
        wanted = path if leaf else os.path.dirname(path)
        if glob.has_magic(path) or os.path.lexists(wanted):
            continue
        if pol is not None and policy.protection_for(pol, os.path.normpath(path)) is not None:
            continue  # it stays unwritable; creating it would change nothing
        os.makedirs(wanted)
        say(f"peninsula: created {wanted} (needed by the allowance {path}, it did not exist yet)")
