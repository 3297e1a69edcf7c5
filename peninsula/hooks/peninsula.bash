# peninsula hook for bash. In ~/.bashrc, after direnv's hook:
#   eval "$(peninsula hook bash)"
# An interactive shell re-execs itself once under the supervisor. At each
# prompt the supervised shell opens a path only the supervisor answers: that
# syscall, made by the shell's own pid, is how the supervisor knows the
# shell is at its prompt. It forks nothing.
if [[ $- == *i* ]]; then
  if [[ -z ${PENINSULA_SESSION-} ]]; then
    if [[ -n ${PENINSULA_UNSUPERVISED-} ]]; then
      :  # peninsula could not start and said why, once
    elif [[ -n ${PENINSULA_DISABLE-} ]]; then
      printf 'peninsula: not supervising this shell (PENINSULA_DISABLE=%s)\n' "$PENINSULA_DISABLE" >&2
    else
      # The same arguments (--rcfile FILE, an editor's --init-file...) and
      # argv[0] ("-bash" for a login shell), and the environment this shell
      # was started with: the rc file then runs once in effect (PATH is
      # not extended twice). Builtins only: nothing forks.
      mapfile -d '' __peninsula_argv < /proc/$$/cmdline
      mapfile -d '' __peninsula_env < /proc/$$/environ
      exec env -i "${__peninsula_env[@]}" @PENINSULA@ shell --hook bash --argv0 "${__peninsula_argv[0]}" \
        -- "$BASH" "${__peninsula_argv[@]:1}"
    fi
  elif [[ ${PENINSULA_SHELL_PID-} == "$$" ]]; then
    __peninsula_prompt() {
      local status=$? line=
      : >| /dev/null/.peninsula-prompt
      if [[ -r $PENINSULA_SESSION_DIR/state ]]; then
        IFS= read -r line < "$PENINSULA_SESSION_DIR/state"
      fi
      case $line in
        '') PENINSULA_PROMPT= ;;
        strict) PENINSULA_PROMPT='[peninsula: strict] ' ;;
        *) PENINSULA_PROMPT="[peninsula: ${line%%$'\t'*}] " ;;
      esac
      return $status
    }
    PROMPT_COMMAND="${PROMPT_COMMAND:+$PROMPT_COMMAND;}__peninsula_prompt"
  else
    printf 'peninsula: this shell runs inside session %s already (started by pid %s); it is judged by that session\n' \
      "$PENINSULA_SESSION" "${PENINSULA_SHELL_PID-?}" >&2
  fi
fi
