#!/usr/bin/env bash
# Copies the module binaries of a profile (debug|release) next to their sidecar docs in the
# collection tree, so ansible-doc and ansible-playbook find both. The modules are the one list's
# (ansible/modules.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
dest=ansible/collection/plugins/modules
modules=$(scripts/modules.sh)
for name in $modules; do
  bin="target/$profile/$name"
  if [ -f "$bin" ]; then
    install -m 0755 "$bin" "$dest/$name"
  else
    echo "install-modules: $bin is missing (build it first)" >&2
    exit 1
  fi
done
