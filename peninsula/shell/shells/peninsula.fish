# peninsula hook for fish. In ~/.config/fish/config.fish, after direnv's hook:
#   peninsula hook fish | source
# See the bash hook for how the prompt ping works; it forks nothing (but a
# direnv unload, below).
if status is-interactive
    if not set -q PENINSULA_SESSION
        if set -q PENINSULA_UNSUPERVISED
            # peninsula could not start and said why, once
        else if set -q PENINSULA_DISABLE
            echo "peninsula: not supervising this shell (PENINSULA_DISABLE=$PENINSULA_DISABLE)" >&2
        else
            # Not here: this code runs inside `peninsula hook fish | source`,
            # a pipeline that owns the terminal. Re-exec at the first prompt.
            # Same arguments, argv[0] and start-up environment (see the bash
            # hook). This shell only lives to its first prompt: it skips fish's
            # interactive set-up (the greeting would show twice) unless the
            # exec fails.
            functions -e __fish_on_interactive
            function __peninsula_start --on-event fish_prompt
                functions -e __peninsula_start
                set -l cmdline (string split0 </proc/$fish_pid/cmdline)
                set -l start_env (string split0 </proc/$fish_pid/environ)
                exec env -i $start_env @PENINSULA@ shell --hook fish --argv0=$cmdline[1] -- (status fish-path) $cmdline[2..-1]
                functions -q __fish_config_interactive; and __fish_config_interactive
            end
        end
    else if test "$PENINSULA_SHELL_PID" = "$fish_pid"
        # -- leaving a direnv environment (see the bash hook) ---------------
        # At the prompt, first: the environment direnv is about to leave is
        # unloaded under the state the shell is still in (direnv run from /,
        # where no .envrc is found: fish has no subshell to cd in), then the
        # ping, then direnv's prompt hook, taken off fish_prompt here so that
        # it runs after the ping and loads the new .envrc under the new
        # state; never while the shell is strict. The programs found now,
        # before any project: a project's PATH does not choose them.
        # While the shell is confined, direnv (and env) run with the loader
        # variables the shell had outside every project, never the
        # project's (see the bash hook): set local to the function that
        # runs them (by path: a function called would not see them), which
        # shadows the shell's own; they are put back after direnv's unload.
        set -l __peninsula_env (command -s env); or set __peninsula_env false
        set -l __peninsula_direnv (command -s direnv); or set __peninsula_direnv false
        eval "function __peninsula_direnv_unload; __peninsula_confined; and eval (__peninsula_loader_locals); "(string escape -- $__peninsula_env)" -C / "(string escape -- $__peninsula_direnv)" export fish | source; __peninsula_confined; and __peninsula_loader_restore; end"
        eval "function __peninsula_direnv_hook; __peninsula_confined; and eval (__peninsula_loader_locals); "(string escape -- $__peninsula_direnv)" export fish | source; end"
        eval "function __peninsula_strict; test -r "(string escape -- $PENINSULA_SESSION_DIR/state)"; and read -l line <"(string escape -- $PENINSULA_SESSION_DIR/state)"; and test \"\$line\" = strict; end"
        # From the physical directory, as direnv finds the .envrc (it drops
        # $PWD) and the supervisor judges it: `path resolve .` is
        # realpath(".") (a builtin); unless it names ".", the environment
        # is unloaded.
        function __peninsula_direnv_leave
            test -n "$DIRENV_DIFF"; or return 0
            set -l dir (path resolve . 2>/dev/null)
            if string match -q '/*' -- "$dir"; and test -n "$dir[1]" -a "$dir[1]" -ef .
                set dir (string replace -r '/$' '' -- $dir[1]) # / is the last step, ''
                while true
                    if test -e $dir/.envrc
                        test "$dir/.envrc" = "$DIRENV_FILE"; and return 0
                        break
                    end
                    test "$dir/.env" = "$DIRENV_FILE" -a -e $dir/.env; and return 0
                    test -n "$dir"; or break
                    set dir (string replace -r '/[^/]*$' '' -- $dir)
                end
            end
            __peninsula_direnv_unload
            return 1
        end
        # direnv's own fish hook is replaced by __peninsula_direnv_hook (at
        # the prompt only: its load at a cd made at the prompt, with
        # direnv_fish_mode, waits for the next prompt), now and at a prompt
        # if it was set up (again) after this one.
        function __peninsula_take_direnv_hook
            functions -q __direnv_export_eval; or return 0
            functions -e __direnv_export_eval __direnv_export_eval_2 __direnv_cd_hook
            function __peninsula_uses_direnv; end
        end
        __peninsula_take_direnv_hook
        function __peninsula_prompt --on-event fish_prompt
            __peninsula_take_direnv_hook
            __peninsula_direnv_leave
            true >/dev/null/.peninsula-prompt
            __peninsula_loader_left
            not __peninsula_strict; and functions -q __peninsula_uses_direnv; and __peninsula_direnv_hook
            set -l line ''
            if test -r $PENINSULA_SESSION_DIR/state
                read -l got <$PENINSULA_SESSION_DIR/state; and set line $got
            end
            switch "$line"
                case ''
                    set -g PENINSULA_PROMPT ''
                case strict
                    set -g PENINSULA_PROMPT '[peninsula: strict] '
                case '*'
                    set -g PENINSULA_PROMPT "[peninsula: "(string split -m1 \t -- $line)[1]"] "
            end
        end
        # -- what a project may not change in this shell --------------------
        # direnv re-exports a project's .env without a new `direnv allow`,
        # and a confined process may have written it. fish autoloads and
        # runs functions and completions from fish_function_path and
        # fish_complete_path, runs the function fish_key_bindings names when
        # it changes; ENV and BASH_ENV run in every sh and bash
        # started later. While the shell is confined, a change to any of
        # them is put back as soon as it is made (fish runs this handler at
        # the change itself); while it is not, their values are kept. The
        # kept values and the state file's path live in function bodies:
        # direnv sets only variables.
        eval "function __peninsula_confined; test -r "(string escape -- $PENINSULA_SESSION_DIR/state)"; and read -l line <"(string escape -- $PENINSULA_SESSION_DIR/state)"; and test -n \"\$line\"; end"
        function __peninsula_keep
            set -l body
            for name in fish_function_path fish_complete_path fish_key_bindings ENV BASH_ENV
                set -l flags 0 0
                set -q $name; and set flags[1] 1
                set -q -x $name; and set flags[2] 1
                set -a body "__peninsula_check $name $flags "(string escape -- (string join ' ' -- (string escape -- $$name)))
            end
            eval "function __peninsula_kept; "(string join '; ' -- $body)"; end"
        end
        function __peninsula_check -a name was_set was_exported kept
            set -l now_set 0
            set -q $name; and set now_set 1
            set -l now_exported 0
            set -q -x $name; and set now_exported 1
            if test $now_set = $was_set -a $now_exported = $was_exported
                and test "$kept" = (string join ' ' -- (string escape -- $$name))
                return
            end
            if test $was_set = 0
                set -e -g $name
            else if test $was_exported = 1
                eval set -gx $name $kept
            else
                eval set -gu $name $kept
            end
            set -g __peninsula_changed $__peninsula_changed $name
        end
        function __peninsula_guard --on-event fish_prompt --on-variable fish_function_path --on-variable fish_complete_path --on-variable fish_key_bindings --on-variable ENV --on-variable BASH_ENV
            if not __peninsula_confined
                __peninsula_keep
            else if functions -q __peninsula_kept
                set -g __peninsula_changed
                __peninsula_kept
                if set -q __peninsula_changed[1]
                    echo "peninsula: the project set "(string join ', ' -- $__peninsula_changed)"; put back (a project may not change what this shell runs)" >&2
                end
                set -e __peninsula_changed
            end
        end
        __peninsula_keep
        # -- the project's own tool caches (see the bash hook) --------------
        # What to put back on leaving is read after each command while the
        # shell is outside every project (the supervisor marks it in one at
        # its chdir there), before direnv's prompt hook. It is kept in a
        # function body, as are the last state seen and the session dir:
        # direnv sets only variables.
        eval "function __peninsula_dir; echo "(string escape -- $PENINSULA_SESSION_DIR)"; end"
        function __peninsula_cache_snapshot
            set -l restore true
            for name in @CACHE_NAMES@
                set -l value (string escape -- $$name)
                if set -q -x $name
                    set -a restore "set -gx $name $value"
                else if set -q $name
                    set -a restore "set -gu $name $value"
                else
                    set -a restore "set -e -g $name"
                end
            end
            eval "function __peninsula_cache_restore; "(string join '; ' -- $restore)"; end"
        end
        function __peninsula_loader_snapshot
            set -l restore true
            set -l locals true
            for name in @LOADER_NAMES@
                set -l value (string escape -- $$name)
                if set -q -x $name
                    set -a restore "set -gx $name $value"
                    set -a locals "set -lx $name $value"
                else if set -q $name
                    set -a restore "set -gu $name $value"
                    set -a locals "set -l $name $value"
                else
                    set -a restore "set -e -g $name"
                    set -a locals "set -l $name"
                end
            end
            eval "function __peninsula_loader_restore; "(string join '; ' -- $restore)"; end"
            eval "function __peninsula_loader_locals; echo "(string escape -- (string join '; ' -- $locals))"; end"
        end
        function __peninsula_cache_keep --on-event fish_postexec
            read -l line <(__peninsula_dir)/state 2>/dev/null
            test -n "$line"; or begin; __peninsula_cache_snapshot; test -n "$DIRENV_DIFF"; or __peninsula_loader_snapshot; end
        end
        __peninsula_cache_snapshot # the shell may start in a project
        __peninsula_loader_snapshot
        # Right after the ping: leaving a project puts them back (see the bash hook).
        function __peninsula_loader_seen
            test -z "$argv[1]"
        end
        function __peninsula_loader_left
            set -l line ''
            read -l got <(__peninsula_dir)/state 2>/dev/null; and set line $got
            __peninsula_loader_seen "$line"; and return
            __peninsula_loader_seen ''; or __peninsula_loader_restore
            eval "function __peninsula_loader_seen; test \"\$argv[1]\" = "(string escape -- $line)"; end"
        end
        # -- sudo and friends by full path (see the bash hook) --------------
        # fish has no function names with "/": a typed full path of the
        # program a name finds is expanded to a call of the shim for that
        # very file.
        eval "function __peninsula_run_path; "(string escape -- $PENINSULA_SESSION_DIR/bin/.by-path)" \$argv; end"
        for shim in $PENINSULA_SESSION_DIR/bin/*
            test -x $shim; or continue
            set -l name (string split -r -m1 / -- $shim)[-1]
            set -l found
            for dir in $PATH
                string match -q '/*' -- $dir; and test "$dir" != $PENINSULA_SESSION_DIR/bin; and test -f $dir/$name -a -x $dir/$name
                or continue
                test -z "$found"; or test $dir/$name -ef $found; or continue
                set -q found[1]; or set found $dir/$name
                abbr --add __peninsula_full_path_(string escape --style=var -- $dir/$name) \
                    --regex "^"(string escape --style=regex -- $dir/$name)"\$" -- "__peninsula_run_path "(string escape -- $dir/$name)
            end
        end
        function __peninsula_cache_seen
            test -z "$argv[1]"
        end
        function __peninsula_caches --on-event fish_prompt
            set -l line ''
            read -l got <(__peninsula_dir)/state 2>/dev/null; and set line $got
            __peninsula_cache_seen "$line"; and return
            eval "function __peninsula_cache_seen; test \"\$argv[1]\" = "(string escape -- $line)"; end"
            __peninsula_cache_restore
            while read -l assignment
                set -l parts (string split -m1 = -- $assignment)
                set -gx $parts[1] $parts[2]
            end <(__peninsula_dir)/caches 2>/dev/null
        end
    else
        echo "peninsula: this shell runs inside session $PENINSULA_SESSION already (started by pid $PENINSULA_SHELL_PID); it is judged by that session" >&2
    end
end
