#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine, as root: system packages,
# a virtualenv built from the system Python (readable by every user), the
# package itself, then `peninsula doctor` and a short demo.
set -euo pipefail
cd "$(dirname "$0")"
if [[ $(id -u) != 0 ]]; then
  echo "setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
packages=(python3 python3-venv python3-dev gcc make git tar libseccomp2 direnv bash zsh fish tmux util-linux strace nix-bin
          # what a real developer session has running outside the sandbox, for the tests
          dbus openssh-client gnupg gpg-agent sudo screen socat cmake sqlite3 vim less)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[[ -x .venv/bin/python ]] || /usr/bin/python3 -m venv .venv
# Editable, as a path entry rather than an import hook (the hook costs every
# start ~7 ms); gcc and python3-dev let pip build the compiled hot path.
.venv/bin/pip install -q --disable-pip-version-check --config-settings editable_mode=compat -e '.[test]'
# Bytecode and the seccomp programs (run, run --fast, shell) built now, by
# root, where every user reads them and only root writes: a plain user's
# start cannot write them, and without them compiles the package or rebuilds
# the filter (pyseccomp) every time. compileall writes even under
# PYTHONDONTWRITEBYTECODE.
.venv/bin/python -m compileall -q peninsula >/dev/null
.venv/bin/python -c 'from peninsula.supervisor.filtercache import filter_bpf
for trap_chdir, kernel_judges_names in ((False, False), (False, True), (True, False)):
    filter_bpf(trap_chdir, kernel_judges_names)'
echo "== peninsula doctor"
.venv/bin/peninsula doctor
echo "== demo: a write inside the project works, one outside is refused"
demo=$(mktemp -d)
(cd "$demo" && "$OLDPWD/.venv/bin/peninsula" run --log "$demo/denials.jsonl" -- \
  sh -c 'echo ok > inside && cat inside; echo no > /etc/peninsula-demo' || true)
test ! -e /etc/peninsula-demo && echo "demo: /etc/peninsula-demo was not written"
rm -rf "$demo"
