#!/usr/bin/env bash
# galaxy-importer (what Galaxy runs on an upload) on a built collection tarball, strict: Galaxy's
# tag list and version 1.0.0 or later required, and any warning it logs fails the check.
# ansible-test inside the importer is off (it needs containers); scripts/sanity.sh runs it.
# Every module must be among the contents it found ("Loading module NAME"): it finds them through
# `ansible-doc`'s listing, which the collection's layout (plugins/modules/<module>.ini) makes work.
# Usage: scripts/galaxy-importer.sh TARBALL
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
tarball=$(realpath "$1")
modules=$(scripts/modules.sh)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
export PATH="$VENV/bin:$PATH"
export GALAXY_IMPORTER_CHECK_REQUIRED_TAGS=true
export GALAXY_IMPORTER_REQUIRE_V1_OR_GREATER=true
export GALAXY_IMPORTER_CHECK_CHANGELOG=true
export GALAXY_IMPORTER_RUN_ANSIBLE_TEST=false
export GALAXY_IMPORTER_RUN_ANSIBLE_LINT=true
export GALAXY_IMPORTER_TMP_ROOT_DIR="$tmp"
status=0
"$VENV/bin/python" -m galaxy_importer.main "$tarball" >"$tmp/out.txt" 2>&1 || status=$?
cat "$tmp/out.txt"
if [ "$status" -ne 0 ]; then
  echo "galaxy-importer: failed" >&2
  exit "$status"
fi
for module in $modules; do
  if ! grep -q -x "Loading module $module" "$tmp/out.txt"; then
    echo "galaxy-importer: module $module is not among the collection's contents (is plugins/modules/$module.ini missing?)" >&2
    exit 1
  fi
done
# Warnings are logged as lines of their own between the progress messages (which include one
# "Loading <type> NAME" per plugin, module and doc fragment).
if grep -v -x -E 'Importing with galaxy-importer .*|Getting doc strings via ansible-doc|Finding content inside collection|Loading (doc_fragments|action|callback|plugin_utils|module) [a-z_]+|Linting collection via ansible-lint .*|\.\.\.ansible-lint run complete|Collection loading complete|Importer processing completed successfully' "$tmp/out.txt" >/dev/null; then
  echo "galaxy-importer: warnings above" >&2
  exit 1
fi
echo "galaxy-importer: ok"
