# The text of `peninsula-devenv-confine`, the launcher the devenv module puts
# in front of every script, task and process:
#
#   peninsula-devenv-confine PROGRAM [ARGS...]
#
# runs PROGRAM under `peninsula run --config <policy> --project <root>`.
# Plain builtins, so tests/test_nix.py can render it with local paths and run
# it for real without nixpkgs.
#
#   shell:     absolute path of bash
#   peninsula: absolute path of the peninsula executable
#   policy:    the rendered TOML policy (a store path in the module)
#   root:      the project root known at evaluation (config.devenv.root);
#              "" to take $DEVENV_ROOT when the command starts
{ shell, peninsula, policy, root ? "" }:
let
  quote = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
in
''
  #!${shell}
  # peninsula-devenv-confine: run a devenv script, task or process confined by
  # peninsula (writes only inside the project and the allowed paths).
  if [ "$#" -eq 0 ]; then
    echo "peninsula-devenv-confine: no command given" >&2
    exit 125
  fi
  root=${quote root}
  if [ -z "$root" ]; then
    root=''${DEVENV_ROOT-}
  fi
  if [ -z "$root" ] || [ ! -d "$root" ]; then
    echo "peninsula: the devenv project root is unknown (DEVENV_ROOT=''${DEVENV_ROOT-}); refusing to run $1 unconfined" >&2
    exit 125
  fi
  # Inside a supervised shell session or a `peninsula run`, `peninsula run`
  # hands the command to the supervisor above, which judges it by this
  # policy *and* the caller's (nesting), so it is used as everywhere else.
  # Under a peninsula run that offers no nest socket (an older peninsula)
  # the kernel allows no second listener (EBUSY): the supervisor above
  # judges this process and everything it starts, by its own policy only.
  # Both facts must hold: the variable says peninsula, the kernel says a
  # seccomp filter is installed.
  if [ -n "''${PENINSULA_SANDBOX-}" ] && [ -z "''${PENINSULA_SESSION_DIR-}" ] && [ -z "''${PENINSULA_RUN_NEST_FD-}" ]; then
    seccomp_mode=
    while IFS=$' \t:' read -r key value _; do
      if [ "$key" = Seccomp ]; then seccomp_mode=$value; fi
    done < /proc/self/status
    if [ "$seccomp_mode" = 2 ]; then
      exec "$@"
    fi
  fi
  exec ${quote peninsula} run --config ${quote policy} --project "$root" -- "$@"
''
