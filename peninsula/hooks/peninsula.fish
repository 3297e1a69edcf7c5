# peninsula hook for fish. In ~/.config/fish/config.fish, after direnv's hook:
#   peninsula hook fish | source
# See the bash hook for how the prompt ping works; it forks nothing.
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
                exec env -i $start_env @PENINSULA@ shell --hook fish --argv0 $cmdline[1] -- (status fish-path) $cmdline[2..-1]
                functions -q __fish_config_interactive; and __fish_config_interactive
            end
        end
    else if test "$PENINSULA_SHELL_PID" = "$fish_pid"
        function __peninsula_prompt --on-event fish_prompt
            true >/dev/null/.peninsula-prompt
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
    else
        echo "peninsula: this shell runs inside session $PENINSULA_SESSION already (started by pid $PENINSULA_SHELL_PID); it is judged by that session" >&2
    end
end
