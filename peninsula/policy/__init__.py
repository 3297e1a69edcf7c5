"""The policy engine: pure decisions on strings and numbers that others have read.

Makes no syscalls and imports nothing of peninsula outside this package.
"""
