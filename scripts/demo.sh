#!/usr/bin/env bash
# `make demo`: brings up the lab, runs the full zero-downtime rotation of secret/homelab-sso against it
# with the collection built from this checkout, prints the summary, runs the SSO doctor, and stops the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
LAB_DIR=${LAB_DIR:-$PWD/.lab}
VENV=${VENV:-$PWD/.venv}
SSO_LAB=${SSO_LAB:-target/debug/sso-lab}
export PATH="$VENV/bin:$PATH"

"$SSO_LAB" down --dir "$LAB_DIR" >/dev/null 2>&1 || true
trap '"$SSO_LAB" down --dir "$LAB_DIR" >/dev/null 2>&1 || true' EXIT

echo "==> Starting the lab (OpenBao, sshd + pct stand-in, PocketID and Forgejo emulators)"
env_file=$("$SSO_LAB" up --dir "$LAB_DIR")
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
echo "    Vault $VAULT_ADDR · PocketID $POCKETID_URL · Loki $LOKI_ADDR · Forgejo $FORGEJO_URL · Proxmox ssh $PROXMOX_SSH_HOST:$PROXMOX_SSH_PORT"

echo "==> Installing the homelab.sso collection built from this checkout"
rm -rf "$LAB_DIR/dist" "$LAB_DIR/collections"
ansible-galaxy collection build ansible/collection --output-path "$LAB_DIR/dist" --force >/dev/null
ansible-galaxy collection install "$LAB_DIR"/dist/homelab-sso-*.tar.gz -p "$LAB_DIR/collections" --offline --force >/dev/null

export ANSIBLE_CONFIG=$PWD/ansible/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH=$LAB_DIR/collections
export ANSIBLE_PYTHON_INTERPRETER=$VENV/bin/python
# The demo authenticates to Vault with the lab's AppRole, never with the root token.
unset LAB_VAULT_ROOT_TOKEN VAULT_TOKEN

echo "==> Drift check before the rotation"
ansible-playbook -i "$LAB_DIR/inventory.yml" ansible/playbooks/drift-check.yml > "$LAB_DIR/drift-before.log"
grep -E "in sync|DRIFT" "$LAB_DIR/drift-before.log" | sed 's/^ *"/    /; s/",\{0,1\}$//' | head -20

echo "==> Full rotation: preflight → mint → one Vault write → redeploy nine services → drift check → retire"
ansible-playbook -i "$LAB_DIR/inventory.yml" ansible/playbooks/rotate-homelab-sso.yml | tee "$LAB_DIR/rotation.log" \
  | grep -E "^(PLAY|TASK) \[|^(ok|changed|fatal|skipping):" | sed 's/\*\+$//'

echo
echo "==> Summary"
sed -n '/TASK \[Summary/,/^$/p' "$LAB_DIR/rotation.log" | grep -E '^ +"' | grep -v '"msg"' | sed 's/^ *"/    /; s/",\{0,1\}$//'
echo "    full logs: $LAB_DIR/rotation.log"

echo
echo "==> SSO doctor after the rotation (the runbook's Logs and Troubleshooting, app by app)"
ansible-playbook -i "$LAB_DIR/inventory.yml" ansible/playbooks/sso-doctor.yml > "$LAB_DIR/doctor.log"
sed -n '/TASK \[PocketID, the client and the logs\]/,/TASK \[Report/p' "$LAB_DIR/doctor.log" \
  | grep -E '^ +"(PocketID|OIDC|Logs|Audit)' | sed 's/^ *"/    /; s/",\{0,1\}$//'
grep -E '"msg": "[a-z0-9-]+: (healthy|UNHEALTHY)' "$LAB_DIR/doctor.log" | sed 's/^ *"msg": "/    /; s/"$//'
echo "    full log: $LAB_DIR/doctor.log"
