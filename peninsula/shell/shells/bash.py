"""bash (peninsula.bash, beside this file).

Re-exec: an interactive bash that is not in a session reads its own argv and
start-up environment from /proc/$$/cmdline and /proc/$$/environ (mapfile: no
fork) and execs `peninsula shell --hook bash --argv0=ARGV0 -- $BASH ARGS...`
under `env -i` with that environment, so --rcfile and a login shell's "-bash"
survive and the rc file runs once in effect.
Prompt: PROMPT_COMMAND gains __peninsula_prompt (the ping, then
$PENINSULA_PROMPT from the state file); __peninsula_keep and __peninsula_guard
around direnv's hook put back PROMPT_COMMAND, PS0-PS4, BASH_ENV, ENV,
BASH_LOADABLES_PATH and BASH_XTRACEFD when a confined project changed them.
"""

from peninsula.shell.shells import Shell

SHELL = Shell("bash", "peninsula.bash", 'eval "$(peninsula hook bash)" in ~/.bashrc')
