#!/usr/bin/env bash
# Copies the module binaries of a profile (debug|release) next to their sidecar docs in the
# collection tree, so ansible-doc and ansible-playbook find both.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
dest=ansible/collection/plugins/modules
for doc in "$dest"/*.yml; do
  name=$(basename "$doc" .yml)
  bin="target/$profile/$name"
  if [ -f "$bin" ]; then
    install -m 0755 "$bin" "$dest/$name"
  else
    echo "install-modules: $bin is missing (build it first)" >&2
    exit 1
  fi
done
