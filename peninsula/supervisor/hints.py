"""What a denial notice suggests, so that the suggestion works where it is
printed: never a path that cannot be allowed (a protected one), and for the
shell sandbox a command the user can run, with where to run it (`peninsula
allow` is refused to confined processes, so not in the shell that saw the
denial while it is inside the project)."""

from __future__ import annotations

import shlex

from peninsula.config import defaults
from peninsula.policy import engine as policy


PROTECTED = "; it is protected (it could run code later, outside the sandbox) and cannot be allowed"


def guard_policy(extra: tuple[str, ...] = ()) -> policy.Policy:
    """Only the protections: the shipped ones and extra."""
    from peninsula.config.options import canonical

    return policy.Policy(writable=("/",), protected=tuple(canonical(p) for p in (*defaults.protected_paths(), *extra)))


def protection_of(path: str, extra: tuple[str, ...] = ()) -> str | None:
    """The shipped (or extra) protection that covers path, or None."""
    return policy.protection_for(guard_policy(extra), path)


# Kernel interfaces, not files: an allowance there hands out processes'
# memory (/proc/PID/mem), kernel knobs or raw devices. Never suggested.
NEVER_SUGGESTED = ("/proc", "/sys", "/dev")


def suggestible(path: str, reason: str) -> bool:
    """Is path a denial whose notice may offer an allowance?"""
    return (path.startswith("/") and "outside" in reason
            and not any(policy.is_beneath(path, top) for top in NEVER_SUGGESTED))


def run_hint(path: str, reason: str) -> str:
    """For `peninsula run`: the option that would allow path."""
    if not suggestible(path, reason):
        return ""
    from peninsula.config.defaults import session_root

    if protection_of(path, (session_root(), *defaults.protected_sockets())):
        return PROTECTED
    return f"; allow with --write {shlex.quote(path)}"


def shell_hint(path: str, reason: str, project: str | None, protect: tuple[str, ...] = ()) -> str:
    """For the shell sandbox: the exact command, and where to run it."""
    if not suggestible(path, reason):
        return ""
    from peninsula.config.defaults import session_root

    if protection_of(path, (*protect, *defaults.protected_in_runtime(), *defaults.protected_sockets(), session_root())):
        return PROTECTED
    profile = profile_for(path)
    if profile is not None:
        return (f"; profile {profile} allows it, shared by every project "
                f"(include = [\"{profile}\"] in the user config); each project has its own cache by default")
    quoted = shlex.quote(path)
    if project is None:
        return f"; to allow it for every project, run `peninsula allow {quoted} --global` at a prompt outside any project"
    return (f"; to allow it, run `peninsula allow {quoted} --project {shlex.quote(project)}` "
            "at a prompt outside the project or in another terminal")


_profile_roots: list[tuple[str, tuple[str, ...]]] | None = None


def profile_for(path: str) -> str | None:
    """The most specific profile (fewest writable roots) that would allow
    writing path, or None. Profiles are read once, at the first denial."""
    global _profile_roots
    from peninsula.config.options import ConfigError, list_profiles, load_options
    from peninsula.config.options import canonical

    if _profile_roots is None:
        _profile_roots = []
        for name, source, _ in list_profiles():
            try:
                options = load_options(source)
            except ConfigError:
                continue
            _profile_roots.append((name, tuple(canonical(r) for r in options.write)))
    matches = [(len(roots), name) for name, roots in _profile_roots if any(policy.is_beneath(path, r) for r in roots)]
    return min(matches)[1] if matches else None
