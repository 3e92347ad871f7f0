#!/usr/bin/env bash
# ansible-vault password client: prints $ANSIBLE_VAULT_PASSWORD (a workflow secret) for
# --vault-password-file, so the password never lands on disk.
set -euo pipefail
if [ -z "${ANSIBLE_VAULT_PASSWORD:-}" ]; then
  echo "ANSIBLE_VAULT_PASSWORD is not set (the repository secret for the ansible-vault file)" >&2
  exit 1
fi
printf '%s\n' "$ANSIBLE_VAULT_PASSWORD"
