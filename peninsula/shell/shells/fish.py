"""fish (peninsula.fish, beside this file).

Re-exec: not while config.fish runs (`peninsula hook fish | source` is a
pipeline that owns the terminal) but at the first fish_prompt event: argv and
start-up environment from /proc/$fish_pid (string split0: no fork), then `exec
env -i ENV peninsula shell --hook fish --argv0=ARGV0 -- (status fish-path)
ARGS...`; fish's interactive set-up is skipped in the shell that re-execs.
Prompt: __peninsula_prompt on the fish_prompt event (the ping, then
$PENINSULA_PROMPT); __peninsula_guard on fish_prompt and on the variables a
project could use to run code (fish_function_path, ENV, ...).
"""

from peninsula.shell.shells import Shell

SHELL = Shell("fish", "peninsula.fish", "peninsula hook fish | source in config.fish")
