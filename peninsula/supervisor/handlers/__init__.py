"""The syscall handlers, one module per family; request.py is what they share.

May import peninsula.config, peninsula.policy and peninsula.kernel; never the loop above them.
"""
