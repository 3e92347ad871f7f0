#!/usr/bin/env bash
# Deploys one service: renders its .env from Vault secret/homelab-sso and restarts it, on the Proxmox
# node that runs its container. Used by the composite action .forgejo/actions/deploy (every
# deploy-<service> workflow); tests run it against the lab.
#
# Environment (the workflow sets these from the catalog, its inputs, and repository secrets/vars):
#   SERVICE, NODE, VMID, ENV_PATH      the service, its Proxmox node and LXC, and its .env inside it
#   ENV_KEYS                           "vault_key=ENV_NAME …" pairs the .env holds (may be empty)
#   PROXMOX_NODES                      "node=host[:port] …" (a cluster; IPv6 as [addr]:port); PROXMOX_HOST
#                                      serves a single node
#   PROXMOX_SSH_KEY_FILE, PROXMOX_KNOWN_HOSTS_FILE   from scripts/ci-ssh-credentials.sh
#   PROXMOX_SSH_USER, PCT_PATH         default root, and pct from the node's PATH
#   VAULT_ADDR, VAULT_CACERT, VAULT_ROLE_ID, VAULT_SECRET_ID
#   REASON, DRY_RUN (true/false), RESTART (restart/recreate/none), RESET_GRAFANA_ADMIN (true/false)
#
# Values never reach the log or a command line: they travel from Vault to the container on stdin.
set -euo pipefail
umask 077

: "${SERVICE:?}" "${VMID:?}" "${ENV_PATH:?}" "${VAULT_ADDR:?}"
ENV_KEYS=${ENV_KEYS:-}
NODE=${NODE:-}
DRY_RUN=${DRY_RUN:-false}
RESTART=${RESTART:-restart}
RESET_GRAFANA_ADMIN=${RESET_GRAFANA_ADMIN:-false}
SSH_USER=${PROXMOX_SSH_USER:-root}

# The node's SSH address: its entry in PROXMOX_NODES, else PROXMOX_HOST (one node).
ssh_target=""
for entry in ${PROXMOX_NODES:-}; do
  if [ "${entry%%=*}" = "$NODE" ]; then ssh_target=${entry#*=}; fi
done
if [ -z "$ssh_target" ]; then
  if [ -n "${PROXMOX_NODES:-}" ]; then
    echo "PROXMOX_NODES has no address for node '$NODE' (which runs $SERVICE): add '$NODE=<host>[:<port>]' to the repository variable PROXMOX_NODES" >&2
    exit 1
  fi
  ssh_target=${PROXMOX_HOST:?set the repository variable PROXMOX_NODES (node=host[:port] …) or PROXMOX_HOST}
fi
# host, host:port, [v6-address] or [v6-address]:port
ssh_port=22
case $ssh_target in
  \[*\]:*) ssh_host=${ssh_target%%]:*}; ssh_host=${ssh_host#[}; ssh_port=${ssh_target##*]:} ;;
  \[*\]) ssh_host=${ssh_target#[}; ssh_host=${ssh_host%]} ;;
  *:*:*) ssh_host=$ssh_target ;;
  *:*) ssh_host=${ssh_target%:*}; ssh_port=${ssh_target##*:} ;;
  *) ssh_host=$ssh_target ;;
esac

# One shell word for the node's login shell, whatever the text holds.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# Runs a program inside the container, over SSH to the node: pct exec VMID -- ARGV…
in_ct() {
  local words a
  words="$(q "${PCT_PATH:-pct}") exec $(q "$VMID") --"
  for a in "$@"; do words+=" $(q "$a")"; done
  ssh -i "$PROXMOX_SSH_KEY_FILE" -p "$ssh_port" -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$PROXMOX_KNOWN_HOSTS_FILE" -l "$SSH_USER" "$ssh_host" "$words"
}

tls=()
if [ -n "${VAULT_CACERT:-}" ]; then tls=(--cacert "$VAULT_CACERT"); fi
vault_token() {
  : "${VAULT_ROLE_ID:?}" "${VAULT_SECRET_ID:?}"
  # From the environment, not argv: another user on the runner can read a process's arguments.
  jq -n '{role_id: env.VAULT_ROLE_ID, secret_id: env.VAULT_SECRET_ID}' \
    | curl -fsS "${tls[@]}" --data @- "$VAULT_ADDR/v1/auth/approle/login" | jq -er .auth.client_token
}
# The secret's latest version as Vault answers it (data and metadata), on stdout; the token travels
# in a header read from stdin.
vault_read() {
  curl -fsS "${tls[@]}" -H @- "$VAULT_ADDR/v1/secret/data/homelab-sso" <<<"X-Vault-Token: $1"
}

# The Vault version a deploy rendered is recorded where it wrote: a comment line in the .env (compose
# and env_harvest skip comments) and, for Grafana's admin password, a file beside it. A deploy never
# replaces either with what it read from an older version: when the runs of two rotations overlap
# (a runner that ignores the workflow's concurrency group, a killed run's deploys still going), the
# older one finishing last leaves the newer files alone, restarts and resets nothing, and succeeds.
# Both scripts run inside the container ($0 the file or the service's directory, $1 the version
# this deploy read), under flock where the container has it, and exit 3 printing the newer
# version they found.
VERSION_LINE='# vault-version: '
# shellcheck disable=SC2016 # $0, $1 and $v are the container's sh's
WRITE_ENV_SH='umask 077 && exec 9>>"$0.lock" && { ! command -v flock >/dev/null || flock 9; } && v=$(sed -n "s/^# vault-version: \([0-9][0-9]*\)$/\1/p" "$0" 2>/dev/null | head -n 1) && if [ -n "$v" ] && [ "$v" -gt "$1" ]; then echo "$v"; exit 3; fi && cat > "$0.new" && mv -- "$0.new" "$0"'
# The record of the version whose Grafana admin password was applied, .grafana-admin-applied
# (GRAFANA_ADMIN_APPLIED=version-<N>, read by the drift check).
# shellcheck disable=SC2016
RESET_GRAFANA_SH='cd "$0" && umask 077 && exec 9>>.grafana-admin-applied.lock && { ! command -v flock >/dev/null || flock 9; } && v=$(sed -n "s/^GRAFANA_ADMIN_APPLIED=version-\([0-9][0-9]*\)$/\1/p" .grafana-admin-applied 2>/dev/null | head -n 1) && if [ -n "$v" ] && [ "$v" -gt "$1" ]; then echo "$v"; exit 3; fi && docker compose exec -T grafana grafana cli admin reset-admin-password --password-from-stdin >/dev/null && printf "GRAFANA_ADMIN_APPLIED=version-%s\n" "$1" > .grafana-admin-applied.new && mv -- .grafana-admin-applied.new .grafana-admin-applied'

# Runs one of the scripts above in the container; a newer version found there ends the deploy
# here, successfully, with nothing more written, restarted or reset.
guarded() { # $1 what holds the newer version ("… was rendered from"), then in_ct's arguments
  local what=$1 newer rc=0
  shift
  newer=$(in_ct "$@") || rc=$?
  if [ "$rc" -eq 3 ]; then
    echo "deploy: $what Vault version $newer, newer than version $version that this deploy read: left as it is, and nothing more is written, restarted or reset (a deploy of $SERVICE for a newer rotation ran first)"
    exit 0
  fi
  [ "$rc" -eq 0 ] || exit "$rc"
}

# shellcheck disable=SC2016 # a jq program: $d, $svc and $keys are jq's
# Each value double-quoted with compose's escapes (\\, \", $$, \n), so the container reads it back
# exactly; a number or boolean (vault_full_write stores YAML numbers as JSON numbers) is written as
# its JSON text, as compose reads it; a key Vault lacks, or holds as null, a list or an object, fails
# the deploy instead of rendering a wrong value. Errors name the key and the JSON type only.
RENDER_JQ='
  def text($key): if type == "string" then .
    elif type == "number" or type == "boolean" then tojson
    else error("deploy: Vault holds \($key) as \(type), not as a text or a number") end;
  def q: gsub("\\\\"; "\\\\") | gsub("\""; "\\\"") | gsub("\\$"; "$$") | gsub("\n"; "\\n");
  . as $d
  | "# \($svc): rendered from Vault secret/homelab-sso by its deploy workflow",
    "\($version_line)\($version)",
    ($keys | split(" ")[] | select(. != "") | split("=")
     | . as [$key, $name]
     | if ($d | has($key)) then "\($name)=\"\($d[$key] | text($key) | q)\"" else error("deploy: Vault lacks \($key)") end)'
# shellcheck disable=SC2016
GRAFANA_JQ='
  if has("grafana_admin_password") | not then error("deploy: Vault lacks grafana_admin_password")
  elif (.grafana_admin_password | type) != "string" or .grafana_admin_password == "" then
    error("deploy: Vault holds grafana_admin_password as \(.grafana_admin_password | type), not as a non-empty text")
  else .grafana_admin_password end'

fail() { echo "$*" >&2; exit 1; }
# Runs jq over the secret's data; its own error text is never shown (it can quote a value): only
# this script's "deploy: …" messages, which name keys and types.
jq_data() {
  local err
  err=$(mktemp)
  if ! jq "$@" < "$data" 2> "$err"; then
    local said
    said=$(grep -o 'deploy: .*' "$err" | head -n 1 || true)
    rm -f "$err"
    if [ -z "$said" ]; then
      said="deploy: rendering from Vault secret/homelab-sso failed (the message of jq is not shown, since it can quote a value)"
    fi
    fail "$said; nothing was written or restarted"
  fi
  rm -f "$err"
}

dir=${ENV_PATH%/*}
echo "Deploying $SERVICE (LXC $VMID on node ${NODE:-?} via $ssh_host:$ssh_port; reason: ${REASON:-manual}, dry run: $DRY_RUN, restart: $RESTART)"
response=$(mktemp)
data=$(mktemp)
rendered=$(mktemp)
password=$(mktemp)
trap 'rm -f "$response" "$data" "$rendered" "$password"' EXIT
version=0
# Everything is read from Vault and rendered before anything is written, restarted or reset: a
# Vault that cannot be reached, or a value that is missing, stops the deploy here.
if [ -n "$ENV_KEYS" ] || [ "$RESET_GRAFANA_ADMIN" = "true" ]; then
  token=$(vault_token) || fail "deploy: could not log in to Vault at $VAULT_ADDR with the AppRole (see curl's message above); nothing was written or restarted"
  vault_read "$token" > "$response" || fail "deploy: could not read secret/homelab-sso from Vault at $VAULT_ADDR (see curl's message above); nothing was written or restarted"
  if ! jq -c .data.data < "$response" > "$data" 2>/dev/null || ! jq -e 'type == "object"' < "$data" > /dev/null 2>&1; then
    fail "deploy: Vault at $VAULT_ADDR returned no data for secret/homelab-sso; nothing was written or restarted"
  fi
  version=$(jq -er '.data.metadata.version | select(type == "number" and . >= 1) | floor' < "$response" 2>/dev/null) \
    || fail "deploy: Vault at $VAULT_ADDR returned no version for secret/homelab-sso; nothing was written or restarted"
fi
if [ -n "$ENV_KEYS" ]; then
  jq_data -r --arg svc "$SERVICE" --arg keys "$ENV_KEYS" --arg version "$version" \
    --arg version_line "$VERSION_LINE" "$RENDER_JQ" > "$rendered"
fi
if [ "$RESET_GRAFANA_ADMIN" = "true" ]; then
  jq_data -j "$GRAFANA_JQ" > "$password"
  [ -s "$password" ] || fail "deploy: no Grafana admin password to apply; nothing was written or restarted"
fi
if [ -n "$ENV_KEYS" ]; then
  if [ "$DRY_RUN" = "true" ]; then
    # The values count, not the version they were rendered from.
    if in_ct cat -- "$ENV_PATH" | grep -v "^$VERSION_LINE" | cmp -s - <(grep -v "^$VERSION_LINE" "$rendered"); then
      echo "$ENV_PATH is up to date"
    else
      echo "$ENV_PATH would change"
    fi
  else
    # Written next to the file and renamed over it: the service never reads half a file.
    guarded "$ENV_PATH was rendered from" sh -c "$WRITE_ENV_SH" "$ENV_PATH" "$version" < "$rendered"
    echo "$ENV_PATH written (Vault version $version)"
  fi
fi
if [ "$DRY_RUN" != "true" ] && [ "$RESTART" != "none" ]; then
  if [ "$RESTART" = "recreate" ]; then
    # shellcheck disable=SC2016
    in_ct sh -c 'cd "$0" && docker compose up -d --force-recreate' "$dir"
  else
    # shellcheck disable=SC2016
    in_ct sh -c 'cd "$0" && docker compose up -d' "$dir"
  fi
  echo "$SERVICE restarted ($RESTART)"
fi
if [ "$DRY_RUN" != "true" ] && [ "$RESET_GRAFANA_ADMIN" = "true" ]; then
  # Grafana applies GF_SECURITY_ADMIN_PASSWORD only when its database is created: set it in the
  # database too. The password travels on stdin only, read before anything was restarted.
  # The version applied is recorded in .grafana-admin-applied beside the .env, for the drift check.
  guarded "Grafana's admin password was applied from" sh -c "$RESET_GRAFANA_SH" "$dir" "$version" < "$password"
  echo "Grafana admin password applied (Vault version $version)"
fi
