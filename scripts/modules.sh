#!/usr/bin/env bash
# The collection's modules, from the one list (ansible/modules.txt).
#   scripts/modules.sh            the module names, one a line
#   scripts/modules.sh --crates   the crates that build them (the package holding src/bin/<module>.rs)
#   scripts/modules.sh -p         the same as cargo arguments: -p <crate> …
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t modules < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' ansible/modules.txt)
[ "${1:-}" = "" ] && { printf '%s\n' "${modules[@]}"; exit 0; }
crates=()
for m in "${modules[@]}"; do
  bin=(crates/*/src/bin/"$m".rs)
  if [ ! -f "${bin[0]}" ]; then
    echo "modules.sh: module $m has no crates/<crate>/src/bin/$m.rs" >&2
    exit 1
  fi
  crate=${bin[0]#crates/}
  crates+=("${crate%%/*}")
done
mapfile -t crates < <(printf '%s\n' "${crates[@]}" | awk '!seen[$0]++')
case $1 in
  --crates) printf '%s\n' "${crates[@]}" ;;
  -p) printf -- '-p %s ' "${crates[@]}"; echo ;;
  *) echo "usage: scripts/modules.sh [--crates | -p]" >&2; exit 2 ;;
esac
