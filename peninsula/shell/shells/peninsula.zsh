# peninsula hook for zsh. In ~/.zshrc, after direnv's hook:
#   eval "$(peninsula hook zsh)"
# See the bash hook for how the prompt ping works; it forks nothing (but a
# direnv unload, below).
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
      exec env -i $__peninsula_env @PENINSULA@ shell --hook zsh --argv0="$__peninsula_argv[1]" \
        -- ${commands[zsh]:-zsh} "${(@)__peninsula_argv[2,-1]}"
    fi
  elif [[ ${PENINSULA_SHELL_PID-} == $$ ]]; then
    __peninsula_precmd() {
      local line=
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
    # -- what a project may not change in this shell ------------------------
    # direnv re-exports a project's .env without a new `direnv allow`, and a
    # confined process may have written it. Prompts (with PROMPT_SUBST),
    # FPATH and MODULE_PATH (autoloaded code), ZDOTDIR, ENV and BASH_ENV
    # from there would run code in this shell, unconfined once it has left.
    # direnv's hook (run at each prompt and at each cd) is wrapped: the
    # values are kept before it and put back after it while the shell is
    # confined, before zsh expands any of them. The kept values and the
    # state file's path live in function bodies: direnv sets only variables.
    # The hook arrays are made arrays here: an export cannot change an array.
    zmodload zsh/parameter
    typeset -ga preexec_functions chpwd_functions periodic_functions zshaddhistory_functions zshexit_functions
    functions[__peninsula_confined]="local line=; { IFS= read -r line < ${(q)PENINSULA_SESSION_DIR}/state } 2>/dev/null; [[ -n \$line ]]"
    __peninsula_keep() {
      local name body=
      for name in PS1 PROMPT RPS1 RPROMPT PS2 PROMPT2 RPS2 RPROMPT2 PS3 PROMPT3 PS4 PROMPT4 SPROMPT PROMPT_EOL_MARK \
          FPATH MODULE_PATH ZDOTDIR ENV BASH_ENV; do
        body+="__peninsula_check $name ${(q)${parameters[$name]-}} ${(q)${(P)name-}};"
      done
      functions[__peninsula_kept]=$body
    }
    __peninsula_check() {  # NAME KEPT-TYPE KEPT-VALUE
      [[ ${parameters[$1]-} == "$2" && ${(P)1-} == "$3" ]] && return
      if [[ -z $2 ]]; then
        unset $1
      else
        : ${(P)1::=$3}
        if [[ $2 == *export* ]]; then export $1; else typeset -g +x $1; fi
      fi
      changed+="${changed:+, }$1"
    }
    __peninsula_guard() {
      local changed=
      if (( ${+functions[__peninsula_kept]} )) && __peninsula_confined; then
        __peninsula_kept
        [[ -z $changed ]] || print -u2 "peninsula: the project set $changed; put back (a project may not change what this shell runs)"
      fi
    }
    # -- the project's own tool caches (see the bash hook) ------------------
    # What to put back on leaving is read at each prompt before the prompt
    # ping (first thing in the first precmd function, below), while the
    # shell is outside every project (the supervisor marks it in one at its
    # chdir there): direnv has loaded no project's .env then. It is kept in
    # a function body, as is the last state seen.
    [[ -n ${__peninsula_dir+set} ]] || typeset -gr __peninsula_dir=$PENINSULA_SESSION_DIR  # readonly: direnv cannot point it elsewhere
    __peninsula_cache_snapshot() {
      local name body=:
      for name in @CACHE_NAMES@; do
        if (( ! ${+parameters[$name]} )); then body+="; unset $name"
        elif [[ ${parameters[$name]} == *export* ]]; then body+="; export $name=${(q)${(P)name}}"
        else body+="; typeset -g +x $name=${(q)${(P)name}}"; fi
      done
      functions[__peninsula_cache_restore]=$body
    }
    __peninsula_loader_snapshot() {  # chained with &&: a failed unset (readonly) runs no direnv
      local name body=:
      for name in @LOADER_NAMES@; do
        if (( ! ${+parameters[$name]} )); then body+=" && unset $name"
        elif [[ ${parameters[$name]} == *export* ]]; then body+=" && export $name=${(q)${(P)name}}"
        else body+=" && typeset -g +x $name=${(q)${(P)name}}"; fi
      done
      functions[__peninsula_loader_restore]=$body
    }
    __peninsula_cache_keep() {
      local line=
      IFS= read -r line < $__peninsula_dir/state
      [[ -n $line ]] || { __peninsula_cache_snapshot; [[ -n ${DIRENV_DIFF-} ]] || __peninsula_loader_snapshot }
    } 2>/dev/null
    __peninsula_cache_snapshot  # the shell may start in a project
    __peninsula_loader_snapshot
    # Right after the ping: leaving a project puts them back (see the bash hook).
    __peninsula_loader_seen() { [[ -z $1 ]] }
    __peninsula_loader_left() {
      local line=
      IFS= read -r line < $__peninsula_dir/state
      __peninsula_loader_seen "$line" && return
      __peninsula_loader_seen '' || __peninsula_loader_restore
      functions[__peninsula_loader_seen]="[[ \$1 == ${(q)line} ]]"
    } 2>/dev/null
    __peninsula_cache_seen() { [[ -z $1 ]] }
    __peninsula_caches() {
      local line= assignment FUNCNEST=1000  # one set by the project must not stop this
      IFS= read -r line < $__peninsula_dir/state
      __peninsula_cache_seen "$line" && return
      functions[__peninsula_cache_seen]="[[ \$1 == ${(q)line} ]]"
      __peninsula_cache_restore
      while IFS= read -r assignment; do
        export "$assignment"
      done < $__peninsula_dir/caches
    } 2>/dev/null
    precmd_functions+=(__peninsula_caches)
    # Wrapped now, and again at a prompt if direnv's hook was set up (or
    # set up again) after this one.
    __peninsula_wrap_direnv() {
      __peninsula_cache_keep
      if (( ${+functions[_direnv_hook]} )) && [[ $functions[_direnv_hook] != *__peninsula_direnv_hook* ]]; then
        # FUNCNEST is local here: one set by the project cannot stop the
        # guard, and stays inside this function.
        # It loads nothing while the shell is strict (a cd from one
        # project into another, before the prompt): the .envrc is loaded
        # at the prompt, after the ping, under the new project.
        _direnv_hook() {
          local FUNCNEST=1000
          __peninsula_keep
          __peninsula_direnv_leave && ! __peninsula_strict && __peninsula_direnv_hook "$@"
          __peninsula_guard
        }
      fi
    }
    # direnv's own hook (the lines `direnv hook zsh` prints), calling
    # direnv without the project's loader variables (see the bash hook).
    __peninsula_direnv_hook() {
      trap -- '' SIGINT
      eval "$(__peninsula_direnv_export)"
      trap - SIGINT
    }
    # -- leaving a direnv environment (see the bash hook) -------------------
    # At the prompt, first: the environment direnv is about to leave is
    # unloaded under the state the shell is still in, then the ping; direnv's
    # hook (a precmd function after this one) loads the new .envrc under the
    # new state. Returns 1 when it unloaded. cd -q: no chpwd hooks.
    functions[__peninsula_direnv_export]="{ ! __peninsula_confined || __peninsula_loader_restore } && ${(q)${commands[direnv]:-false}} export zsh"
    functions[__peninsula_strict]="local line=; { IFS= read -r line < ${(q)PENINSULA_SESSION_DIR}/state } 2>/dev/null; [[ \$line == strict ]]"
    # From the physical directory, as direnv finds the .envrc (it drops
    # $PWD) and the supervisor judges it: the kernel's name for it, read
    # through /proc/self/cwd (no fork). Not ${dot:A}: zsh finds "." by
    # chdir("..") up to / and back, and a directory moved meanwhile leaves
    # the shell in /. Unless it names "." (a deleted one stays
    # /proc/PID/cwd), the environment is unloaded.
    __peninsula_direnv_leave() {
      [[ -n ${DIRENV_DIFF-} ]] || return 0
      local cwd=/proc/self/cwd dir
      dir=${cwd:A}
      if [[ $dir == /* && $dir != /proc/* && $dir -ef . ]]; then
        dir=${dir%/}  # / is the last step, ''
        while :; do
          if [[ -e $dir/.envrc ]]; then [[ $dir/.envrc == "${DIRENV_FILE-}" ]] && return 0; break; fi
          [[ $dir/.env == "${DIRENV_FILE-}" && -e $dir/.env ]] && return 0
          [[ -n $dir ]] || break
          dir=${dir%/*}
        done
      fi
      trap -- '' SIGINT
      eval "$(builtin cd -q / && __peninsula_direnv_export)"
      ! __peninsula_confined || __peninsula_loader_restore
      trap - SIGINT
      return 1
    }
    __peninsula_leave() {
      local FUNCNEST=1000
      __peninsula_keep
      __peninsula_direnv_leave
      __peninsula_guard
      : >| /dev/null/.peninsula-prompt  # the ping
      __peninsula_loader_left
    }
    # -- sudo and friends by full path (see the bash hook) ----------------
    __peninsula_full_paths() {
      local shim name dir found
      for shim in $PENINSULA_SESSION_DIR/bin/*(N); do
        [[ -x $shim ]] || continue
        name=${shim:t} found=
        for dir in $path; do
          [[ $dir == /* && $dir != $PENINSULA_SESSION_DIR/bin && -f $dir/$name && -x $dir/$name ]] || continue
          [[ -z $found || $dir/$name -ef $found ]] || continue
          found=${found:-$dir/$name}
          functions[$dir/$name]="${(q)PENINSULA_SESSION_DIR}/bin/.by-path ${(q)dir}/${(q)name} \"\$@\""
        done
      done
    }
    __peninsula_full_paths
    __peninsula_wrap_direnv
    precmd_functions=(__peninsula_wrap_direnv __peninsula_leave $precmd_functions)
  else
    print -u2 "peninsula: this shell runs inside session $PENINSULA_SESSION already (started by pid ${PENINSULA_SHELL_PID-?}); it is judged by that session"
  fi
fi
