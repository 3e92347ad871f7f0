#!/usr/bin/env bash
# Writes the Proxmox SSH key and known_hosts from the repository secrets into a private directory
# (0700/0600) and points the playbooks at them. Nothing is printed. The directory is always new
# (mktemp -d): a directory someone else created beforehand is never written into.
set -euo pipefail
umask 077
if [ -z "${PROXMOX_SSH_KEY:-}" ] || [ -z "${PROXMOX_KNOWN_HOSTS:-}" ]; then
  echo "The secrets PROXMOX_SSH_KEY and PROXMOX_KNOWN_HOSTS must be set (known_hosts pins the Proxmox host key)." >&2
  exit 1
fi
dir="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/homelab-sso-ssh.XXXXXXXXXX")" || {
  echo "could not create a private directory under ${RUNNER_TEMP:-${TMPDIR:-/tmp}} for the SSH key (mktemp -d failed): set RUNNER_TEMP or TMPDIR to a writable directory" >&2
  exit 1
}
printf '%s\n' "$PROXMOX_SSH_KEY" > "$dir/id"
printf '%s\n' "$PROXMOX_KNOWN_HOSTS" > "$dir/known_hosts"
{
  echo "PROXMOX_SSH_KEY_FILE=$dir/id"
  echo "PROXMOX_KNOWN_HOSTS_FILE=$dir/known_hosts"
} >> "${GITHUB_ENV:-/dev/null}"
