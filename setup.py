"""The compiled hot path is optional: without a C compiler the build goes
on and peninsula runs in pure Python (peninsula/supervisor/fastpath.py)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("peninsula.supervisor._fastpath", ["peninsula/supervisor/_fastpath.c"], optional=True,
                             extra_compile_args=["-O2", "-Wall"])])
