#!/usr/bin/env bash
# The SSO status report (playbooks/sso-status.yml) from a terminal: Ansible's text, or with --json
# only the report (the fact sso_status: names, times and prefixes, never a value) as JSON on stdout,
# Ansible's output then on stderr. The exit status is the playbook's: 0 when nothing needs attention.
# A run that stops before its verdict (Vault or SSH unreachable) prints {"verdict": "failed", ...}.
#
#   scripts/sso-status.sh [-i inventory/hosts.yml] [other ansible-playbook options]
#   scripts/sso-status.sh --json [-i inventory/hosts.yml] | jq .problems
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
json=false
args=()
for a in "$@"; do
  if [ "$a" = "--json" ]; then json=true; else args+=("$a"); fi
done
cd "$root/ansible"
if ! $json; then
  exec ansible-playbook playbooks/sso-status.yml "${args[@]}"
fi
report="$(mktemp "${TMPDIR:-/tmp}/sso-status.XXXXXXXXXX")"
trap 'rm -f "$report"' EXIT
set +e
ansible-playbook playbooks/sso-status.yml -e "sso_status_json=$report" "${args[@]}" >&2
rc=$?
set -e
if [ -s "$report" ]; then
  cat "$report"
else
  printf '%s\n' '{"verdict": "failed", "problems": ["the run stopped before its verdict: its output (stderr) says why"]}'
fi
exit "$rc"
