"""The library API (Sandbox) and the launcher that forks, restricts and execs one command.

May import peninsula.supervisor and everything below it.
"""
