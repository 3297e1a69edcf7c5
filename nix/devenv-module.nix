# The devenv module: `sandbox.enable = true;` confines this project's devenv
# scripts, tasks and processes with peninsula. See docs/devenv.md.
#
# How the wrapping works: this module declares `scripts`, `tasks` and
# `processes` a second time with only an `apply` function (the module system
# merges such a declaration with devenv's), so every reader of
# config.scripts / config.tasks / config.processes (devenv's PATH profile,
# tasks.json, the process manager) sees the confined versions, whether they
# are started from the shell, by `devenv up` or by `devenv tasks run`.
{ config, lib, pkgs, ... }:
let
  cfg = config.sandbox;
  spec = import ./options.nix;
  table = spec.options;
  inherit (lib) types mkOption;

  optionType = {
    paths = types.listOf types.str;
    names = types.listOf types.str;
    bool = types.bool;
    path = types.nullOr types.str;
  };

  policyOptions = builtins.mapAttrs
    (_: o: mkOption {
      type = optionType.${o.kind};
      inherit (o) default example description;
    })
    table;

  # devenv declares devenv.root (a string; toString in case it is a path).
  projectRoot = toString (config.devenv.root or "");

  # Pure and content-addressed: the same options give the same store path.
  policyText = import ./render-policy.nix
    (builtins.intersectAttrs table cfg // { root = projectRoot; });
  policyFile = builtins.toFile "peninsula-devenv.toml" policyText;

  confine = pkgs.writeScript "peninsula-devenv-confine" (import ./confine.nix {
    shell = "${pkgs.bash}/bin/bash";
    peninsula = lib.getExe cfg.package;
    policy = policyFile;
    root = projectRoot;
  });

  # Store path names allow only these characters; task names have ":".
  safeName = s: builtins.concatStringsSep "" (map
    (c: if builtins.match "[a-zA-Z0-9+._?=-]" c != null then c else "-")
    (lib.stringToCharacters s));

  confined = name: target: pkgs.writeScript "${safeName name}-confined" ''
    #!${pkgs.runtimeShell}
    exec ${confine} ${target} "$@"
  '';

  wrapScript = name: s:
    if !(s ? scriptPackage) then
      throw "peninsula: scripts.${name} has no scriptPackage (unknown devenv version); refusing to leave it unconfined"
    else s // {
      scriptPackage = lib.hiPrio (pkgs.writeTextFile {
        name = safeName name;
        executable = true;
        destination = "/bin/${name}";
        text = ''
          #!${pkgs.runtimeShell}
          exec ${confine} ${s.scriptPackage}/bin/${name} "$@"
        '';
        meta.mainProgram = name;
      });
    };

  # devenv's own tasks (devenv:enterShell, devenv:files, devenv:processes:*,
  # ...) are left alone: enterShell must change the interactive shell, which
  # the shell sandbox confines; processes are confined through `processes`.
  wrapTask = name: t:
    if lib.hasPrefix "devenv:" name then t
    else if !(t ? command) then
      throw "peninsula: tasks.${name} has no command (unknown devenv version); refusing to leave it unconfined"
    else
      let
        wrap = what: c: if c == null then null else confined "task-${name}-${what}" c;
        command = wrap "command" t.command;
        status = wrap "status" (t.statusCommand or null);
      in
      t
      // { inherit command; }
      // lib.optionalAttrs (t ? statusCommand) { statusCommand = status; }
      // lib.optionalAttrs (t ? config && t.config ? command) {
        config = t.config // { inherit command; }
          // lib.optionalAttrs (t.config ? status) { inherit status; };
      };

  wrapProcess = name: p: p // {
    exec = "exec ${confine} ${pkgs.writeShellScript "process-${safeName name}" p.exec}";
  };

  applyWhenEnabled = wrap: value:
    if cfg.enable then builtins.mapAttrs wrap value else value;
in
{
  options.sandbox = policyOptions // {
    enable = lib.mkEnableOption ''
      peninsula's write sandbox for this project's scripts, tasks and
      processes: they may write only inside the project and the allowed
      paths. The interactive shell is confined by peninsula's shell sandbox
      once you run `peninsula trust` in the project'';
    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage (peninsula + \"/nix/package.nix\") { }";
      description = "The peninsula package that runs the sandbox.";
    };
  };

  options.scripts = mkOption { apply = applyWhenEnabled wrapScript; };
  options.tasks = mkOption { apply = applyWhenEnabled wrapTask; };
  options.processes = mkOption { apply = applyWhenEnabled wrapProcess; };

  config = lib.mkIf cfg.enable {
    packages = [ cfg.package ];
    # The shell sandbox treats this file like a project's .peninsula.toml:
    # applied only after `peninsula trust` in the project.
    enterShell = ''
      if [ -n "''${DEVENV_ROOT-}" ] && [ -d "$DEVENV_ROOT" ]; then
        mkdir -p "$DEVENV_ROOT/.devenv"
        ln -sfn ${policyFile} "$DEVENV_ROOT/.devenv/peninsula.toml"
      fi
    '';
  };
}
