# Entry point for devenv.yaml imports:
#
#   inputs:
#     peninsula:
#       url: github:OWNER/peninsula
#       flake: false
#   imports:
#     - peninsula/nix
#
# then `sandbox.enable = true;` in devenv.nix. See docs/devenv.md.
{
  imports = [ ./devenv-module.nix ];
}
