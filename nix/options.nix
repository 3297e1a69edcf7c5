# The sandbox options of the devenv module, and the key of peninsula's config
# file (peninsula/config/options.py, KEYS) that each one renders to. Plain data: the
# module builds its options from this table and render-policy.nix refuses
# anything not in it, so the two cannot drift apart. tests/test_nix.py checks
# that the keys of `options` plus `notExposed` are exactly config.KEYS, so a
# key added to the loader fails the tests until it is mapped or listed here.
#
# kind: "paths" (list of path strings), "names" (list of profile names),
# "bool", or "path" (one path string, or null for unset).
{
  options = {
    allowWrite = {
      key = "write";
      kind = "paths";
      default = [ ];
      example = [ "$HOME/.cache/pip" "~/.npm" ];
      description = ''
        Extra directories the sandboxed commands may write beneath, besides
        the project ($DEVENV_ROOT), /tmp, /var/tmp and /dev/shm (not
        $XDG_RUNTIME_DIR, where the user's services listen). "~" and "$VARS"
        are expanded by peninsula when the
        command starts, not by Nix; relative paths are taken relative to the
        project root. Shared caches are a cache-poisoning path between
        projects: add them knowingly.
      '';
    };
    protect = {
      key = "protect";
      kind = "paths";
      default = [ ];
      example = [ "src/generated/*" "!src/generated/keep" "~/.aws" ];
      description = ''
        Paths denied even beneath a writable root (fnmatch globs allowed; a
        pattern starting with "!" re-allows what an earlier one protected,
        the last match wins). Added to peninsula's shipped protections
        (shell rc files, ~/.ssh, ~/.gnupg, git's global config,
        toolchains...), which cannot be removed from here. Relative paths
        are taken relative to the project root.
      '';
    };
    readOnly = {
      key = "read_only";
      kind = "bool";
      default = false;
      example = true;
      description = ''
        Make the project itself read-only: only the temp directories, the
        terminal and the allowWrite paths stay writable.
      '';
    };
    hardlinkedWrites = {
      key = "hardlinked_writes";
      kind = "bool";
      default = false;
      example = true;
      description = ''
        Allow writing regular files that have more than one hard link. Off
        by default: the other names may lie outside the sandbox.
      '';
    };
    log = {
      key = "log";
      kind = "path";
      default = null;
      example = "$DEVENV_ROOT/.devenv/peninsula-denials.jsonl";
      description = ''
        File that receives one JSON line per denied write (default:
        $XDG_STATE_HOME/peninsula/denials.jsonl). Expanded like allowWrite.
      '';
    };
    profiles = {
      key = "include";
      kind = "names";
      default = [ ];
      example = [ "pip" "npm" ];
      description = ''
        Named peninsula profiles to apply first (looked up in
        ~/.config/peninsula/profiles, then among the shipped ones; see
        `peninsula profiles`), e.g. a shared package cache. Names only, no
        paths: nothing is read relative to the Nix store.
      '';
    };
  };

  # Loader keys the module does not offer: they change how a command runs
  # rather than where it may write, or they belong to one invocation. Use
  # `peninsula run` flags or a project .peninsula.toml for them.
  notExposed = [
    "description"
    "best_effort" "fast"
    "allow_connect" "allow_bind"
    "unshare_net" "unshare_pid" "unshare_ipc" "unshare_uts" "hostname"
    "limit_as" "limit_fsize" "limit_cpu" "limit_nofile" "limit_nproc" "limit_walltime"
    "log_max_size" "allow_socket" "allow_loopback"
    "clear_env" "keep_env" "setenv" "workdir"
  ];
}
