"""peninsula: a transparent write sandbox for your shell and commands."""

__version__ = "0.1.0"
__all__ = ["Sandbox", "Result", "SandboxError", "__version__"]


def __getattr__(name):
    # Imported lazily: the hook and prompt entry points must start fast.
    if name in ("Sandbox", "Result", "SandboxError"):
        from peninsula.sandbox import api as sandbox

        return getattr(sandbox, name)
    raise AttributeError(name)
