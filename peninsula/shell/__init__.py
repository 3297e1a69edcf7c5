"""The supervised interactive shell: session, its judge, control socket, join, nesting; shells/ (one module per shell, its hook beside it).

May import peninsula.sandbox and everything below it.
"""
