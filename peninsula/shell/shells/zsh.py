"""zsh (peninsula.zsh, beside this file).

Re-exec: argv and start-up environment read with $(</proc/$$/cmdline) and
$(</proc/$$/environ) (zsh reads them itself: no fork), then `exec env -i ENV
peninsula shell --hook zsh --argv0=ARGV0 -- zsh ARGS...`.
Prompt: __peninsula_precmd in precmd_functions (the ping, then
$PENINSULA_PROMPT); direnv's _direnv_hook is wrapped in __peninsula_keep and
__peninsula_guard, which put back the prompts, FPATH, MODULE_PATH, ZDOTDIR, ENV
and BASH_ENV when a confined project changed them, before zsh expands them.
"""

from peninsula.shell.shells import Shell

SHELL = Shell("zsh", "peninsula.zsh", 'eval "$(peninsula hook zsh)" in ~/.zshrc')
