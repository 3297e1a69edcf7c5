"""The exported seccomp BPF, cached beside the code that builds it.

Building the filter means importing pyseccomp, which loads libseccomp
through ctypes.util.find_library: two `ldconfig -p` processes, some 20 ms
on every shell start. The program depends only on the filter's source (the
syscall table, which decides the rules, and kernel/seccomp.py, which turns
them into BPF) and the libseccomp that exported it, so it is cached under a
key made of these.

The program is the sandbox's own rules: it is trusted only from a place
whose trust is that of peninsula's code, the package's __pycache__
directory (where Python keeps the bytecode it runs, too). Whoever can
write there can rewrite peninsula itself; nobody else can plant a program
there. It was once kept in ~/.cache/peninsula, which every process of the
user may write unless a sandbox stops it, and a confined run that got
around the protection replaced it with "allow everything" for every later
run (issue 19). Where the code's directory is not writable (a system or
Nix install) the program is built on every start.
"""

from __future__ import annotations

import contextlib
import os

LIBSECCOMP_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libseccomp.so.2",
    "/lib/x86_64-linux-gnu/libseccomp.so.2",
    "/usr/lib64/libseccomp.so.2",
    "/usr/lib/libseccomp.so.2",
)


def cache_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")


def _key(trap_chdir: bool, kernel_judges_names: bool) -> str | None:
    """The filter's source files and the libseccomp, by size, mtime and inode
    (stat only: hashing the source meant loading hashlib and OpenSSL, some
    3 ms of every start)."""
    parts = []
    here = os.path.dirname(os.path.abspath(__file__))
    sources = (os.path.join(here, "table.py"), os.path.join(os.path.dirname(here), "kernel", "seccomp.py"))
    for path in (*sources, *LIBSECCOMP_CANDIDATES):
        try:
            info = os.stat(path)
        except OSError:
            if path in sources:
                return None
            continue
        parts.append(f"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}")
        if path not in sources:
            break
    else:
        return None  # an unknown libseccomp location: do not cache
    parts.append(("chdir" if trap_chdir else "plain") + ("-kernel-names" if kernel_judges_names else ""))
    return "-".join(parts)


def filter_bpf(trap_chdir: bool = False, kernel_judges_names: bool = False) -> bytes:
    """The filter program, from the cache when it is there."""
    key = _key(trap_chdir, kernel_judges_names)
    path = os.path.join(cache_dir(), f"filter-{key}.bpf") if key else None
    if path:
        with contextlib.suppress(OSError):
            with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as handle:
                info = os.fstat(handle.fileno())
                data = handle.read()
            # written by this user or root, and writable by nobody else
            if info.st_uid in (os.geteuid(), 0) and not info.st_mode & 0o022 and data and len(data) % 8 == 0:
                return data
    from peninsula.kernel.seccomp import build_filter_bpf
    from peninsula.supervisor import table

    data = build_filter_bpf(table.rules(trap_chdir=trap_chdir, kernel_judges_names=kernel_judges_names))
    if path:
        with contextlib.suppress(OSError):
            # Python's own mode for __pycache__: every user of this
            # installation reads the program (and the bytecode) there.
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
    return data
