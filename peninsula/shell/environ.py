"""The names of the variables a supervised shell is started with; nothing
else (`peninsula prompt`, forked at every prompt by starship and friends,
imports this and not the session modules)."""

ENV_SESSION = "PENINSULA_SESSION"


ENV_SESSION_DIR = "PENINSULA_SESSION_DIR"


ENV_SHELL_PID = "PENINSULA_SHELL_PID"
