# peninsula as a Nix package: `pkgs.callPackage ./package.nix { }`.
#
# landlockpy and pyseccomp are not in nixpkgs, so they are built here from
# their PyPI sdists. The hashes are the sha256 PyPI publishes for these exact
# files (checked against https://pypi.org/simple/<name>/ when this was
# written); the Nix build itself could not be run where it was written (no
# nixpkgs there), see docs/devenv.md.
{ lib
, python3Packages
, libseccomp
, src ? null
}:
let
  inherit (python3Packages) buildPythonApplication buildPythonPackage fetchPypi;

  landlockpy = buildPythonPackage rec {
    pname = "landlockpy";
    version = "0.2.0";
    pyproject = true;
    src = fetchPypi {
      inherit pname version;
      hash = "sha256-KpFdtZosGXDRgfnCv/eG1gQNj5EFOA2mQ5D1/mG0FI0=";
    };
    build-system = [ python3Packages.hatchling ];
    # Pure Python over ctypes; it finds libc with find_library("c") and falls
    # back to the running process (CDLL(None)), which is always right.
    pythonImportsCheck = [ "landlockpy" ];
    meta = {
      description = "Python bindings for the Landlock Linux security module";
      homepage = "https://github.com/Quad4-Software/landlockpy";
      license = lib.licenses.bsd0;
      platforms = lib.platforms.linux;
    };
  };

  pyseccomp = buildPythonPackage rec {
    pname = "pyseccomp";
    version = "0.1.2";
    pyproject = true;
    src = fetchPypi {
      inherit pname version;
      hash = "sha256-DVTvrPcb2kvf0hIz9URLcwy+z1k9YC95bmQSqGgiWL0=";
    };
    build-system = [ python3Packages.setuptools python3Packages.wheel ];
    # pyseccomp loads libseccomp with ctypes.util.find_library("seccomp"),
    # which finds nothing on NixOS (no ldconfig cache, no gcc at run time).
    # Pin the library's store path instead of setting LD_LIBRARY_PATH in a
    # wrapper: that variable would leak into every sandboxed command.
    postPatch = ''
      substituteInPlace pyseccomp.py \
        --replace-fail 'ctypes.util.find_library("seccomp")' \
                       '"${lib.getLib libseccomp}/lib/libseccomp.so.2"'
    '';
    # Importing loads the library: proves the patched path is right.
    pythonImportsCheck = [ "pyseccomp" ];
    meta = {
      description = "An interface to libseccomp using ctypes";
      homepage = "https://github.com/cptpcrd/pyseccomp";
      license = lib.licenses.mit;
      platforms = lib.platforms.linux;
    };
  };

  # The repository, without .git, the venv, caches and the nix/ directory
  # itself (so editing the module does not rebuild the package).
  defaultSrc = builtins.path {
    name = "peninsula-source";
    path = ./..;
    filter = path: type:
      let base = baseNameOf path; rel = lib.removePrefix (toString ./.. + "/") (toString path); in
      !(lib.elem base [ ".git" ".venv" "__pycache__" ".pytest_cache" "result" "peninsula.egg-info" ])
      # an in-place build of the compiled hot path is for the venv's Python:
      # the package builds its own from peninsula/supervisor/_fastpath_c/ (setup.py)
      && !(lib.hasSuffix ".so" base)
      && (rel == "pyproject.toml" || rel == "setup.py" || rel == "README.md" || rel == "peninsula" || lib.hasPrefix "peninsula/" rel);
  };

  pyproject = builtins.fromTOML (builtins.readFile ../pyproject.toml);
in
buildPythonApplication {
  pname = "peninsula";
  version = pyproject.project.version;
  pyproject = true;
  src = if src != null then src else defaultSrc;

  build-system = [ python3Packages.setuptools ];
  dependencies = [ landlockpy pyseccomp python3Packages.tomlkit ];

  # The test suite needs Landlock, seccomp user-notify and a second user:
  # none of that exists inside the Nix build sandbox (which may itself run
  # under a seccomp filter, and nesting user-notify fails). Run it with
  # `.venv/bin/python -m pytest` on a real machine; here, check the imports
  # and that the installed command starts.
  pythonImportsCheck = [ "peninsula" "peninsula.cli.main" "pyseccomp" "landlockpy" ];
  doCheck = true;
  checkPhase = ''
    runHook preCheck
    $out/bin/peninsula --help > /dev/null
    runHook postCheck
  '';

  passthru = { inherit landlockpy pyseccomp; };

  meta = {
    description = pyproject.project.description;
    license = lib.licenses.mit;
    platforms = [ "x86_64-linux" ];
    mainProgram = "peninsula";
  };
}
