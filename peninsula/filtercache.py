"""The exported seccomp BPF, cached on disk.

Building the filter means importing pyseccomp, which loads libseccomp
through ctypes.util.find_library: two `ldconfig -p` processes, some 20 ms
on every shell start. The program depends only on the filter's source and
the libseccomp that exported it, so it is cached under a key made of both.
The cache lives in $XDG_CACHE_HOME/peninsula, which confined processes may
not write (defaults.PROTECTED_IN_HOME); a missing or unreadable cache is
simply rebuilt.
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
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "peninsula")


def _key(trap_chdir: bool, kernel_judges_names: bool) -> str | None:
    """The filter's source file and the libseccomp, by size, mtime and inode
    (stat only: hashing the source meant loading hashlib and OpenSSL, some
    3 ms of every start)."""
    parts = []
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seccomp.py")
    for path in (source, *LIBSECCOMP_CANDIDATES):
        try:
            info = os.stat(path)
        except OSError:
            if path == source:
                return None
            continue
        parts.append(f"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}")
        if path != source:
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
            with open(path, "rb") as handle:
                data = handle.read()
            if data and len(data) % 8 == 0:
                return data
    from .seccomp import build_filter_bpf

    data = build_filter_bpf(trap_chdir=trap_chdir, kernel_judges_names=kernel_judges_names)
    if path:
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            tmp = f"{path}.{os.getpid()}"
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
    return data
