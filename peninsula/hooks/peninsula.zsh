# peninsula hook for zsh. In ~/.zshrc, after direnv's hook:
#   eval "$(peninsula hook zsh)"
# See the bash hook for how the prompt ping works; it forks nothing.
if [[ -o interactive ]]; then
  if [[ -z ${PENINSULA_SESSION-} ]]; then
    if [[ -n ${PENINSULA_UNSUPERVISED-} ]]; then
      :  # peninsula could not start and said why, once
    elif [[ -n ${PENINSULA_DISABLE-} ]]; then
      print -u2 "peninsula: not supervising this shell (PENINSULA_DISABLE=$PENINSULA_DISABLE)"
    else
      # Same arguments, argv[0] and start-up environment (see the bash hook).
      # $(<file) is read by zsh itself: nothing forks.
      local -a __peninsula_argv __peninsula_env
      __peninsula_argv=(${(0)"$(</proc/$$/cmdline)"})
      __peninsula_env=(${(0)"$(</proc/$$/environ)"})
      exec env -i $__peninsula_env @PENINSULA@ shell --hook zsh --argv0 "$__peninsula_argv[1]" \
        -- ${commands[zsh]:-zsh} "${(@)__peninsula_argv[2,-1]}"
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
