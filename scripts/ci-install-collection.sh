#!/usr/bin/env bash
# Installs the homelab.sso collection for a workflow run: from HOMELAB_SSO_COLLECTION (a release asset
# URL or a tarball path), else from the newest tarball in dist/. Never compiles anything.
set -euo pipefail
src=${HOMELAB_SSO_COLLECTION:-}
if [ -z "$src" ]; then
  src=$(find dist -maxdepth 1 -name "homelab-sso-*.tar.gz" 2>/dev/null | sort -V | tail -n 1)
fi
if [ -z "$src" ]; then
  echo "No collection to install: set the repository variable HOMELAB_SSO_COLLECTION to the release asset URL of homelab-sso-<version>.tar.gz (built by the release workflow)." >&2
  exit 1
fi
offline=()
case "$src" in http://*|https://*) ;; *) offline=(--offline) ;; esac
ansible-galaxy collection install "$src" -p ansible/collections --force "${offline[@]}"
