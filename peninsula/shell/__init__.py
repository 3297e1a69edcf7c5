"""The supervised interactive shell: session, its judge, control socket, join, nesting, hooks.

May import peninsula.sandbox and everything below it.
"""
