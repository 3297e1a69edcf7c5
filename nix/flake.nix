{
  description = "peninsula: a write sandbox for a developer's shell and commands (Landlock + seccomp user-notify)";

  # This flake lives in nix/ of the peninsula repository; refer to it as
  # github:OWNER/peninsula?dir=nix. It reads the Python sources from "..".
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      # peninsula's seccomp filter and emulator are x86_64-only for now.
      systems = [ "x86_64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: rec {
        peninsula = pkgs.callPackage ./package.nix { };
        default = peninsula;
      });

      apps = forAll (pkgs: rec {
        peninsula = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.peninsula}/bin/peninsula";
        };
        default = peninsula;
      });

      # In devenv.nix: imports = [ inputs.peninsula.devenvModules.default ];
      # The package defaults to one built with the project's own nixpkgs.
      devenvModules.default = ./devenv-module.nix;

      overlays.default = final: prev: {
        peninsula = final.callPackage ./package.nix { };
      };
    };
}
