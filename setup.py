"""The compiled hot path is optional: without a C compiler the build goes
on and peninsula runs in pure Python (peninsula/supervisor/fastpath.py)."""

from setuptools import Extension, setup

# module.c holds the handler table; one file per handler family (see its head).
SOURCES = [f"peninsula/supervisor/_fastpath_c/{name}.c" for name in ("module", "request", "open", "names", "metadata", "lineage")]

setup(ext_modules=[Extension("peninsula.supervisor._fastpath", SOURCES, depends=["peninsula/supervisor/_fastpath_c/common.h"],
                             optional=True, extra_compile_args=["-O2", "-Wall"])])
