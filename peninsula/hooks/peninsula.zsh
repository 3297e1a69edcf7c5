# peninsula hook for zsh. In ~/.zshrc, after direnv's hook:
#   eval "$(peninsula hook zsh)"
# See the bash hook for how the prompt ping works; it forks nothing.
if [[ -o interactive ]]; then
  if [[ -z ${PENINSULA_SESSION-} ]]; then
    if [[ -n ${PENINSULA_DISABLE-} ]]; then
      print -u2 "peninsula: not supervising this shell (PENINSULA_DISABLE=$PENINSULA_DISABLE)"
    elif [[ -o login ]]; then
      exec @PENINSULA@ shell --hook zsh -- ${commands[zsh]:-zsh} -l -i
    else
      exec @PENINSULA@ shell --hook zsh -- ${commands[zsh]:-zsh} -i
    fi
  elif [[ ${PENINSULA_SHELL_PID-} == $$ ]]; then
    __peninsula_precmd() {
      local line=
      : >| /dev/null/.peninsula-prompt
      if [[ -r $PENINSULA_SESSION_DIR/state ]]; then
        IFS= read -r line < $PENINSULA_SESSION_DIR/state
      fi
      case $line in
        '') PENINSULA_PROMPT= ;;
        strict) PENINSULA_PROMPT='[peninsula: strict] ' ;;
        *) PENINSULA_PROMPT="[peninsula: ${line%%$'\t'*}] " ;;
      esac
    }
    typeset -ga precmd_functions
    precmd_functions+=(__peninsula_precmd)
  else
    print -u2 "peninsula: this shell runs inside session $PENINSULA_SESSION already (started by pid ${PENINSULA_SHELL_PID-?}); it is judged by that session"
  fi
fi
