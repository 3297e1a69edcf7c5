"""The `peninsula` command: one module per command, imported only when named (registry.py lists them).

May import everything; nothing imports it.
"""
