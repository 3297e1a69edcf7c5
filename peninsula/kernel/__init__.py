"""Thin wrappers over the kernel: ctypes syscalls, seccomp, Landlock, /proc and path resolution.

Each module is named after what it wraps; imports nothing of peninsula outside this package.
"""
