"""The `peninsula` command: one module per command, imported only when named.

May import everything; nothing imports it.
"""
