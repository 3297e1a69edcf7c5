# peninsula hook for bash. In ~/.bashrc, after direnv's hook:
#   eval "$(peninsula hook bash)"
# An interactive shell re-execs itself once under the supervisor. At each
# prompt the supervised shell opens a path only the supervisor answers: that
# syscall, made by the shell's own pid, is how the supervisor knows the
# shell is at its prompt. It forks nothing.
if [[ $- == *i* ]]; then
  if [[ -z ${PENINSULA_SESSION-} ]]; then
    if [[ -n ${PENINSULA_DISABLE-} ]]; then
      printf 'peninsula: not supervising this shell (PENINSULA_DISABLE=%s)\n' "$PENINSULA_DISABLE" >&2
    else
      if shopt -q login_shell; then
        exec @PENINSULA@ shell --hook bash -- "$BASH" -l -i
      else
        exec @PENINSULA@ shell --hook bash -- "$BASH" -i
      fi
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
    # -- what a project may not change in this shell ------------------------
    # direnv re-exports a project's .env at a prompt without a new `direnv
    # allow`, and a confined process may have written it. PROMPT_COMMAND,
    # PS0-PS4 (command substitution), BASH_ENV, ENV and BASH_LOADABLES_PATH
    # from there would run code in this shell, unconfined once it has left
    # (and could remove this hook first). So their values are kept before
    # direnv's hook runs, and put back right after it while the shell is
    # confined, before bash runs or expands any of them.
    __peninsula_watched=(PS0 PS1 PS2 PS3 PS4 BASH_ENV ENV BASH_LOADABLES_PATH)
    declare -gA __peninsula_kept=() __peninsula_kept_attr=()
    __peninsula_keep() {
      local status=$? name
      __peninsula_kept=() __peninsula_kept_attr=()
      for name in PROMPT_COMMAND "${__peninsula_watched[@]}"; do
        __peninsula_kept_attr[$name]="${!name+set}:${!name@a}"
        __peninsula_kept[$name]=${!name-}
      done
      __peninsula_kept_pc=("${PROMPT_COMMAND[@]}")
      __peninsula_kept_pc_keys="${!PROMPT_COMMAND[*]}"
      return $status
    }
    __peninsula_put_back() {
      local name=$1 attr=${__peninsula_kept_attr[$1]}
      if [[ $name == PROMPT_COMMAND ]]; then
        unset -v PROMPT_COMMAND
        if [[ $attr == *a* ]]; then PROMPT_COMMAND=("${__peninsula_kept_pc[@]}")
        elif [[ $attr == set:* ]]; then PROMPT_COMMAND=${__peninsula_kept_pc[0]}
        fi
      elif [[ $attr == set:* ]]; then
        printf -v "$name" '%s' "${__peninsula_kept[$name]}"
      else
        unset -v "$name"
      fi
      if [[ $attr == set:*x* ]]; then export "$name"; elif [[ -n ${!name+set} ]]; then export -n "$name"; fi
    }
    __peninsula_guard() {
      local status=$? name changed=
      [[ -n $PENINSULA_PROMPT && -n ${__peninsula_kept_attr[PS1]+kept} ]] || return $status
      if [[ "${PROMPT_COMMAND+set}:${PROMPT_COMMAND@a}" != "${__peninsula_kept_attr[PROMPT_COMMAND]}" \
            || "${!PROMPT_COMMAND[*]}" != "$__peninsula_kept_pc_keys" ]]; then
        changed=PROMPT_COMMAND
      else
        for name in "${!PROMPT_COMMAND[@]}"; do
          [[ ${PROMPT_COMMAND[name]} == "${__peninsula_kept_pc[name]}" ]] || changed=PROMPT_COMMAND
        done
      fi
      [[ -z $changed ]] || __peninsula_put_back PROMPT_COMMAND
      for name in "${__peninsula_watched[@]}"; do
        if [[ "${!name+set}:${!name@a}" != "${__peninsula_kept_attr[$name]}" || ${!name-} != "${__peninsula_kept[$name]}" ]]; then
          __peninsula_put_back "$name"
          changed+="${changed:+, }$name"
        fi
      done
      [[ -z $changed ]] || printf 'peninsula: the project set %s; put back (a project may not change what this shell runs)\n' "$changed" >&2
      return $status
    }
    PROMPT_COMMAND="__peninsula_keep;$PROMPT_COMMAND;__peninsula_guard"
  else
    printf 'peninsula: this shell runs inside session %s already (started by pid %s); it is judged by that session\n' \
      "$PENINSULA_SESSION" "${PENINSULA_SHELL_PID-?}" >&2
  fi
fi
