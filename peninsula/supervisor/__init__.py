"""The supervisor: the notify loop, the syscall handlers and the compiled hot path.

May import peninsula.config, peninsula.policy and peninsula.kernel.
"""
