#!/usr/bin/env bash
# galaxy-importer (what Galaxy runs on an upload) on a built collection tarball, strict: Galaxy's
# tag list and version 1.0.0 or later required, and any warning it logs fails the check.
# ansible-test inside the importer is off (it needs containers); scripts/sanity.sh runs it.
# galaxy-importer lists only Python/PowerShell plugins as contents, so a binary module with a
# sidecar doc does not appear in its result (`contents: []`); ansible-doc is how they are documented.
# Usage: scripts/galaxy-importer.sh TARBALL
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
tarball=$(realpath "$1")
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
# Warnings are logged as lines of their own between the progress messages (which include one
# "Loading doc_fragments NAME" per doc fragment; the binary modules are not listed).
if grep -v -x -E 'Importing with galaxy-importer .*|Getting doc strings via ansible-doc|Finding content inside collection|Loading (doc_fragments|action|plugin_utils) [a-z_]+|Linting collection via ansible-lint .*|\.\.\.ansible-lint run complete|Collection loading complete|Importer processing completed successfully' "$tmp/out.txt" >/dev/null; then
  echo "galaxy-importer: warnings above" >&2
  exit 1
fi
echo "galaxy-importer: ok"
