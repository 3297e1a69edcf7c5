# Render the devenv module's sandbox options to the TOML text of a peninsula
# config file (the same keys as a project's .peninsula.toml; see
# peninsula/config/options.py). Plain Nix builtins only, so it evaluates without
# nixpkgs:
#
#   nix-instantiate --eval --strict --json --expr \
#     'import ./nix/render-policy.nix { allowWrite = [ "$HOME/.cache/pip" ]; }'
#
# Arguments: the options of options.nix (profiles, allowWrite, protect,
# readOnly, hardlinkedWrites, log; all optional), plus `root`: when it is a non-empty
# string, relative paths are anchored beneath it (the module passes the
# project root). Paths starting with "/", "~" or "$" are left for peninsula's
# loader, which expands "~" and "$VARS" when the command starts; without
# `root`, relative paths stay relative and peninsula takes them relative to
# the directory holding the file. Unknown arguments and wrong types are
# errors, never silently dropped.
args:
let
  table = (import ./options.nix).options;
  inherit (builtins)
    attrNames concatStringsSep elem filter fromJSON genList head isAttrs
    isBool isList isString length map replaceStrings stringLength substring
    throw toJSON typeOf;

  fail = msg: throw "peninsula sandbox options: ${msg}";

  # Output order; must name every option of options.nix exactly once.
  order = [ "profiles" "allowWrite" "protect" "readOnly" "hardlinkedWrites" "log" ];
  known = attrNames table;
  checkedOrder =
    if builtins.sort builtins.lessThan order == builtins.sort builtins.lessThan known
    then order
    else fail "render-policy.nix and options.nix disagree on the option names";

  unknown = filter (n: !(elem n known) && n != "root") (attrNames args);

  # --- TOML basic strings -------------------------------------------------
  hexDigits = "0123456789ABCDEF";
  hex2 = n: substring (n / 16) 1 hexDigits + substring (n - (n / 16) * 16) 1 hexDigits;
  # Every control character TOML forbids raw in a basic string (NUL cannot
  # occur in a Nix string). fromJSON is the one builtin that can make them.
  controls = genList (i: i + 1) 31 ++ [ 127 ];
  controlChar = n: fromJSON "\"\\u00${hex2 n}\"";
  shortEscapes = { "8" = "\\b"; "9" = "\\t"; "10" = "\\n"; "12" = "\\f"; "13" = "\\r"; };
  controlEscape = n: shortEscapes.${toString n} or "\\u00${hex2 n}";
  # replaceStrings scans once, left to right, so escaping "\" and "\"" in
  # the same pass cannot double-escape. Non-ASCII UTF-8 is valid TOML as is.
  tomlString = s:
    "\"" + replaceStrings
      ([ "\\" "\"" ] ++ map controlChar controls)
      ([ "\\\\" "\\\"" ] ++ map controlEscape controls)
      s + "\"";

  # --- paths --------------------------------------------------------------
  root = args.root or null;
  checkedRoot =
    if root == null || root == "" then null
    else if !isString root then fail "root must be a string, not ${typeOf root}"
    else if substring 0 1 root != "/" then fail "root must be an absolute path, got ${toJSON root}"
    else if builtins.match ".*[$].*" root != null then
      fail "root ${toJSON root} contains \"$\", which peninsula's loader would expand; move the project"
    else root;
  anchored = p:
    let first = substring 0 1 p; in
    if checkedRoot == null || elem first [ "/" "~" "$" ] then p
    else if p == "." then checkedRoot
    else checkedRoot + "/" + p;
  renderPath = name: p:
    if !isString p then fail "${name} entries must be strings, got ${typeOf p}"
    else if p == "" then fail "${name} has an empty path"
    else if substring 0 1 p == "!" then
      (if name != "protect" then fail "${name} entry ${toJSON p}: \"!\" negation is only for protect"
       else if stringLength p == 1 then fail "protect entry \"!\" names no path"
       else "!" + anchored (substring 1 (stringLength p - 1) p))
    else anchored p;

  # Profile names as peninsula's find_profile accepts them: a name with "/"
  # or ".toml" would be read as a file relative to the Nix store.
  renderName = name: n:
    if !isString n then fail "${name} entries must be strings, got ${typeOf n}"
    else if builtins.match "[A-Za-z0-9][A-Za-z0-9_.-]*" n == null || builtins.match ".*[.]toml" n != null then
      fail "${name} entry ${toJSON n} is not a profile name (letters, digits, \"_\", \".\", \"-\"; no paths)"
    else n;

  value = name: args.${name} or table.${name}.default;

  renderOne = name:
    let
      kind = table.${name}.kind;
      key = table.${name}.key;
      v = value name;
    in
    if kind == "paths" then
      (if !isList v then fail "${name} must be a list of strings, not ${typeOf v}"
       else [ "${key} = [${concatStringsSep ", " (map (p: tomlString (renderPath name p)) v)}]" ])
    else if kind == "names" then
      (if !isList v then fail "${name} must be a list of profile names, not ${typeOf v}"
       else [ "${key} = [${concatStringsSep ", " (map (n: tomlString (renderName name n)) v)}]" ])
    else if kind == "bool" then
      (if !isBool v then fail "${name} must be true or false, not ${typeOf v}"
       else [ "${key} = ${if v then "true" else "false"}" ])
    else if kind == "path" then
      (if v == null then [ ]
       else if !isString v || v == "" then fail "${name} must be a non-empty string or null"
       else if substring 0 1 v == "!" then fail "${name} cannot start with \"!\""
       else [ "${key} = ${tomlString (anchored v)}" ])
    else fail "options.nix: unknown kind ${toJSON kind} for ${name}";

  lines = builtins.concatLists (map renderOne checkedOrder);
in
if !isAttrs args then fail "expected an attribute set of options, got ${typeOf args}"
else if unknown != [ ] then
  fail "unknown option(s) ${concatStringsSep ", " unknown} (known: ${concatStringsSep ", " order})"
else
  concatStringsSep "\n" ([
    "# peninsula sandbox policy, rendered from devenv.nix by nix/render-policy.nix."
    "# The same keys as a project's .peninsula.toml; see docs/devenv.md."
  ] ++ lines) + "\n"
