#!/usr/bin/env bash
# Copies the module binaries of a profile (debug|release) into the collection tree, where
# ansible-doc and ansible-playbook find them: each binary in ansible/collection/bin/, reached by
# the symlink plugins/modules/<module> beside its sidecar doc <module>.yml and its listing stub
# <module>.ini (the layout `ansible-doc -l` needs: see ansible/collection/README.md). The modules
# are the one list's (ansible/modules.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-release}
coll=ansible/collection
modules=$(scripts/modules.sh)
mkdir -p "$coll/bin"
for name in $modules; do
  bin="target/$profile/$name"
  if [ ! -f "$bin" ]; then
    echo "install-modules: $bin is missing (build it first)" >&2
    exit 1
  fi
  install -m 0755 "$bin" "$coll/bin/$name"
  # A checkout from before this layout may hold the binary itself here; the symlink replaces it.
  link="$coll/plugins/modules/$name"
  if [ ! -L "$link" ] || [ "$(readlink "$link")" != "../../bin/$name" ]; then
    rm -f "$link"
    ln -s "../../bin/$name" "$link"
  fi
done
