# peninsula hook for bash. In ~/.bashrc, after direnv's hook:
#   eval "$(peninsula hook bash)"
# An interactive shell re-execs itself once under the supervisor. At each
# prompt the supervised shell opens a path only the supervisor answers: that
# syscall, made by the shell's own pid, is how the supervisor knows the
# shell is at its prompt. It forks nothing (but a direnv unload, below).
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
      exec env -i "${__peninsula_env[@]}" @PENINSULA@ shell --hook bash --argv0="${__peninsula_argv[0]}" \
        -- "$BASH" "${__peninsula_argv[@]:1}"
    fi
  elif [[ ${PENINSULA_SHELL_PID-} == "$$" ]]; then
    __peninsula_prompt() {
      local status=$? line=
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
    # confined, before bash runs or expands any of them. Whatever direnv can
    # set is a variable; the kept values and the state file's path live in
    # function bodies, which it cannot change.
    printf -v __peninsula_q '%q' "$PENINSULA_SESSION_DIR/state"
    eval "__peninsula_confined() { local line=; IFS= read -r line 2>/dev/null < $__peninsula_q; [[ -n \$line ]]; }"
    unset -v __peninsula_q
    __peninsula_keep() {
      local status=$? name q body= i FUNCNEST=
      __peninsula_cache_keep
      __peninsula_own_direnv_hook
      for name in PS0 PS1 PS2 PS3 PS4 BASH_ENV ENV BASH_LOADABLES_PATH BASH_XTRACEFD; do
        printf -v q '%q' "${!name-}"
        body+="__peninsula_check $name '${!name+set}:${!name@a}' $q;"
      done
      body+="__peninsula_check_pc '${PROMPT_COMMAND+set}:${PROMPT_COMMAND@a}' ${#PROMPT_COMMAND[@]}"
      for i in "${!PROMPT_COMMAND[@]}"; do
        printf -v q '%q' "${PROMPT_COMMAND[i]}"
        body+=" $i $q"
      done
      eval "__peninsula_kept() { $body; }"
      __peninsula_direnv_leave
      __peninsula_guard
      : >| /dev/null/.peninsula-prompt  # the ping: direnv's hook, next, loads under the new state
      __peninsula_loader_left
      return $status
    }
    # -- leaving a direnv environment -------------------------------------
    # The shell's state changes only at the ping, and an environment that
    # a confined process may have shaped (an .envrc exporting LD_PRELOAD,
    # BASH_ENV, PATH) must not reach anything run under the next state. So
    # when direnv is about to leave the loaded .envrc (the nearest one, as
    # direnv finds it from the physical directory, is another or none),
    # it is unloaded first,
    # under the state the shell is still in: direnv's own unload, run from
    # / where no .envrc is found; the subshell of $(...) is the only fork,
    # and only at such a prompt. The ping follows; direnv's hook then loads
    # the new .envrc under the new state. The direnv found now, before any
    # project: a project's PATH does not choose it.
    #
    # direnv itself runs without the loader variables a project set
    # (LD_PRELOAD, LD_AUDIT, LD_LIBRARY_PATH): with them, direnv would be
    # the project's code, and what it prints this shell evaluates (it could
    # export anything, or redefine these functions). While the shell is
    # confined, it runs with the values the shell had outside every project
    # instead (read with the cache values, below, when no direnv
    # environment was loaded either), in the subshell of $(...) only;
    # direnv, which then cannot revert the project's values, unloads
    # everything else, and those values are put back right after its
    # unload (and after the ping that leaves the project, below). Outside
    # every project, the values are the user's: direnv sees and reverts
    # them itself. Only ever called inside $(...).
    hash direnv 2>/dev/null && printf -v __peninsula_q '%q' "${BASH_CMDS[direnv]}"
    eval "__peninsula_direnv_export() { { ! __peninsula_confined || __peninsula_loader_restore; } && ${__peninsula_q:-false} export bash; }"
    unset -v __peninsula_q
    IFS=: read -r -a __peninsula_path <<< "$PATH"
    for __peninsula_q in "${__peninsula_path[@]}"; do
      [[ $__peninsula_q == /* && -f $__peninsula_q/pwd && -x $__peninsula_q/pwd ]] && { printf -v __peninsula_q '%q' "$__peninsula_q/pwd"; break; }
      __peninsula_q=
    done
    eval "__peninsula_pwd_physical() { { ! __peninsula_confined || __peninsula_loader_restore; } && ${__peninsula_q:-false} -P; }"
    unset -v __peninsula_q __peninsula_path
    # direnv's own hook (the same lines as `direnv hook bash` prints) calls
    # it that way too: defined again at each prompt, first, in case
    # direnv's hook was set up (again) after this one.
    __peninsula_own_direnv_hook() {
      declare -F _direnv_hook >/dev/null || return 0
      _direnv_hook() {
        local previous_exit_status=$? FUNCNEST=
        trap -- '' SIGINT
        eval "$(__peninsula_direnv_export)"
        trap - SIGINT
        return $previous_exit_status
      }
    }
    # direnv finds the .envrc from the physical directory (it drops $PWD),
    # the one the supervisor judges, not from $PWD: a symlink a confined
    # process made in the project leads out of it while $PWD stays under
    # its .envrc. $PWD is that directory when it names "." and no part of
    # it is a symlink (builtins only: no fork); else pwd -P tells it, run
    # as direnv is (below), in $(...) only. Empty when unknown: unloaded.
    __peninsula_physical_dir() {  # sets the caller's dir
      local rest=${PWD#/} prefix=
      dir=
      if [[ $PWD == /* && $PWD -ef . ]]; then
        dir=$PWD
        while [[ -n $rest ]]; do
          prefix+=/${rest%%/*}
          if [[ $rest == */* ]]; then rest=${rest#*/}; else rest=; fi
          [[ -L $prefix ]] && { dir=; break; }
        done
      fi
      [[ -n $dir ]] || dir=$(__peninsula_pwd_physical)
      [[ $dir == /* ]] || dir=
    }
    __peninsula_direnv_leave() {
      [[ -n ${DIRENV_DIFF-} ]] || return 0
      local dir
      __peninsula_physical_dir
      if [[ -n $dir ]]; then
        dir=${dir%/}  # / is the last step, ''
        while :; do
          if [[ -e $dir/.envrc ]]; then [[ $dir/.envrc == "${DIRENV_FILE-}" ]] && return 0; break; fi
          [[ $dir/.env == "${DIRENV_FILE-}" && -e $dir/.env ]] && return 0
          [[ -n $dir ]] || break
          dir=${dir%/*}
        done
      fi
      trap -- '' SIGINT
      eval "$(builtin cd / && __peninsula_direnv_export)"
      ! __peninsula_confined || __peninsula_loader_restore
      trap - SIGINT
    }
    __peninsula_check() {  # NAME KEPT-ATTRIBUTES KEPT-VALUE
      [[ "${!1+set}:${!1@a}" == "$2" && ${!1-} == "$3" ]] && return
      # bash closes the fd BASH_XTRACEFD names when it is unset or changed
      # (fd 1: the terminal): a copy is put back in its place.
      local fd= saved=
      if [[ $1 == BASH_XTRACEFD && ${BASH_XTRACEFD-} =~ ^[0-9]+$ ]]; then fd=$BASH_XTRACEFD; exec {saved}>&"$fd"; fi 2>/dev/null
      if [[ $2 == set:* ]]; then printf -v "$1" '%s' "$3"; else unset -v "$1"; fi
      if [[ $2 == set:*x* ]]; then export "$1"; elif [[ -n ${!1+set} ]]; then export -n "$1"; fi
      [[ -z $saved ]] || eval "exec $fd>&$saved $saved>&-"
      changed+="${changed:+, }$1"
    }
    __peninsula_check_pc() {  # KEPT-ATTRIBUTES COUNT INDEX VALUE...
      local attr=$1 count=$2 same=1 i
      shift 2
      local -a kept=()
      while (( $# )); do kept[$1]=$2; shift 2; done
      [[ "${PROMPT_COMMAND+set}:${PROMPT_COMMAND@a}" == "$attr" && ${#PROMPT_COMMAND[@]} == "$count"
         && "${!PROMPT_COMMAND[*]}" == "${!kept[*]}" ]] || same=
      for i in "${!kept[@]}"; do [[ ${PROMPT_COMMAND[i]-} == "${kept[i]}" ]] || same=; done
      [[ -n $same ]] && return
      unset -v PROMPT_COMMAND
      if [[ $attr == *a* ]]; then
        PROMPT_COMMAND=()
        for i in "${!kept[@]}"; do PROMPT_COMMAND[i]=${kept[i]}; done
      elif [[ $attr == set:* ]]; then
        PROMPT_COMMAND=${kept[0]}
      fi
      if [[ $attr == set:*x* ]]; then export PROMPT_COMMAND; fi
      changed+="${changed:+, }PROMPT_COMMAND"
    }
    __peninsula_guard() {
      local status=$? changed= FUNCNEST=  # one set by the project must not stop this guard
      if declare -F __peninsula_kept >/dev/null && __peninsula_confined; then
        __peninsula_kept
        [[ -z $changed ]] || printf 'peninsula: the project set %s; put back (a project may not change what this shell runs)\n' "$changed" >&2
      fi
      # direnv's hook, when set up after this one, puts itself first: the
      # values must be kept before it runs.
      if [[ ${PROMPT_COMMAND@a} != *a* && $PROMPT_COMMAND != "__peninsula_keep;"* ]]; then
        PROMPT_COMMAND="__peninsula_keep;${PROMPT_COMMAND//__peninsula_keep;/}"
      fi
      return $status
    }
    PROMPT_COMMAND="__peninsula_keep;$PROMPT_COMMAND;__peninsula_guard"
    # -- the project's own tool caches ------------------------------------
    # While the shell is in a project, npm, pip, uv, go, cargo, yarn and
    # gradle are pointed at that project's cache (the supervisor lists the
    # variables in the session's caches file); leaving puts back what was
    # there before entering: the values read before direnv's hook ran at the
    # prompt where the shell entered (direnv may load the project's .env,
    # which a confined process may have written, at that very prompt), and
    # put back after direnv's unload at the prompt where it leaves, whatever
    # direnv or the project did meanwhile. Those values, and the last state
    # seen, live in function bodies: direnv sets only variables. Read only
    # when the state changes.
    [[ -n ${__peninsula_dir+set} ]] || declare -gr __peninsula_dir=$PENINSULA_SESSION_DIR  # readonly: direnv cannot point it elsewhere
    __peninsula_cache_snapshot() {
      local name q body=:
      for name in @CACHE_NAMES@; do
        if [[ -z ${!name+set} ]]; then body+="; unset -v $name"; continue; fi
        printf -v q '%q' "${!name}"
        if [[ ${!name@a} == *x* ]]; then body+="; export $name=$q"; else body+="; export -n $name; $name=$q"; fi
      done
      eval "__peninsula_cache_restore() { $body; }"
    }
    __peninsula_loader_snapshot() {  # chained with &&: a failed unset (readonly) runs no direnv
      local name q body=:
      for name in @LOADER_NAMES@; do
        if [[ -z ${!name+set} ]]; then body+=" && unset -v $name"; continue; fi
        printf -v q '%q' "${!name}"
        if [[ ${!name@a} == *x* ]]; then body+=" && export $name=$q"; else body+=" && export -n $name && $name=$q"; fi
      done
      eval "__peninsula_loader_restore() { $body; }"
    }
    # Called first at each prompt (by __peninsula_keep, before direnv's
    # hook): while the shell is outside every project (the supervisor marks
    # it in one at its chdir there, before this prompt), what is there now
    # is the user's.
    __peninsula_cache_keep() {
      local line=
      IFS= read -r line < "$__peninsula_dir/state"
      [[ -n $line ]] || { __peninsula_cache_snapshot; [[ -n ${DIRENV_DIFF-} ]] || __peninsula_loader_snapshot; }
    } 2>/dev/null
    __peninsula_cache_snapshot  # the shell may start in a project
    __peninsula_loader_snapshot
    # Right after the ping, before anything else runs under the new state:
    # when the shell has left the project it was in (for another, or none),
    # the loader variables are put back even if direnv had no environment
    # left to unload: direnv unloads by itself, inside the project, an
    # .envrc it cannot open (which the walk above still sees), and cannot
    # revert what it never saw. Entering a project changes nothing.
    __peninsula_loader_seen() { [[ -z $1 ]]; }
    __peninsula_loader_left() {
      local line= q
      IFS= read -r line < "$__peninsula_dir/state"
      __peninsula_loader_seen "$line" && return
      __peninsula_loader_seen '' || __peninsula_loader_restore
      printf -v q '%q' "$line"
      eval "__peninsula_loader_seen() { [[ \$1 == $q ]]; }"
    } 2>/dev/null
    __peninsula_cache_seen() { [[ -z $1 ]]; }
    __peninsula_caches() {
      local status=$? line= assignment q FUNCNEST=  # one set by the project must not stop this
      IFS= read -r line < "$__peninsula_dir/state" 2>/dev/null
      __peninsula_cache_seen "$line" && return $status
      printf -v q '%q' "$line"
      eval "__peninsula_cache_seen() { [[ \$1 == $q ]]; }"
      __peninsula_cache_restore
      while IFS= read -r assignment; do
        export "$assignment"
      done < "$__peninsula_dir/caches"
      return $status
    } 2>/dev/null
    PROMPT_COMMAND="$PROMPT_COMMAND;__peninsula_caches"
    # -- sudo and friends by full path -------------------------------------
    # no_new_privs takes their privilege here; by name they run through the
    # session's shims (first on PATH, privileged.py), and by the full path
    # of the program a name finds (/usr/bin/sudo, /bin/sudo), so do they: a
    # function of that name calls the shim for that very file. Typed or in
    # this shell's own functions only: a script's /usr/bin/sudo runs
    # without privilege.
    __peninsula_full_paths() {
      local shim name dir found IFS=: q
      printf -v q '%q' "$PENINSULA_SESSION_DIR/bin/.by-path"
      for shim in "$PENINSULA_SESSION_DIR"/bin/*; do
        [[ -x $shim ]] || continue
        name=${shim##*/} found=
        for dir in $PATH; do
          [[ $dir == /* && $dir != "$PENINSULA_SESSION_DIR/bin" && -f $dir/$name && -x $dir/$name ]] || continue
          [[ -z $found || $dir/$name -ef $found ]] || continue
          found=${found:-$dir/$name}
          [[ $dir/$name =~ ^[A-Za-z0-9/._+-]+$ ]] && eval "$dir/$name() { $q $dir/$name \"\$@\"; }"
        done
      done
    }
    __peninsula_full_paths
  else
    printf 'peninsula: this shell runs inside session %s already (started by pid %s); it is judged by that session\n' \
      "$PENINSULA_SESSION" "${PENINSULA_SHELL_PID-?}" >&2
  fi
fi
