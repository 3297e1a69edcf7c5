"""direnv's stdlib extension (direnvrc, beside this file), not a shell: it
re-execs nothing and has no prompt. `use peninsula` in an .envrc marks that
project as confined; the supervisor reads the allowed .envrc itself.
"""

from peninsula.shell.shells import Shell

SHELL = Shell("direnv", "direnvrc", "peninsula hook direnv > ~/.config/direnv/lib/peninsula.sh")
