"""What the user and the project configured, read from files: options, profiles, projects, shipped defaults.

May import peninsula.policy and peninsula.kernel.
"""
