#!/usr/bin/env bash
# Posts one JSON alert about a workflow run to the webhook in NOTIFY_WEBHOOK_URL (an n8n webhook, or
# any URL that takes a JSON POST), with `Authorization: Bearer $NOTIFY_WEBHOOK_TOKEN` when that is set
# (in n8n: Header Auth with the name `Authorization` and the value `Bearer <token>`).
#
#   scripts/notify-webhook.sh WORKFLOW SUMMARY_JSON_FILE
#
# SUMMARY_JSON_FILE is what the playbook wrote (HOMELAB_SSO_SUMMARY_FILE): {"workflow", "verdict",
# "services": [...], "keys": [...]}, names only. A missing or unreadable file (the run stopped before
# writing it) still alerts, with the verdict "failed" and no names. The message:
#
#   {"workflow", "verdict", "services", "keys", "repository", "event", "run_url", "text"}
#
# run_url is the run's page, $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_NUMBER
# (Forgejo's web URLs use the run's number in the repository; GITHUB_RUN_ID is the global id).
# Never a value or a fingerprint: only names pass (letters, digits, '_', '.', '-'; anything else
# in the summary is dropped).
#
# NOTIFY_WEBHOOK_URL unset: a notice and exit 0 (alerts are optional; the failed run shows in
# Forgejo anyway). A failed delivery (unreachable, or an answer that is not 2xx) exits 1 with an
# error naming only the webhook's scheme and host: the URL's path and query (an n8n webhook URL is
# a capability) and the answer's body are never printed.
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: scripts/notify-webhook.sh WORKFLOW SUMMARY_JSON_FILE" >&2
  exit 2
fi
workflow="$1"
summary="$2"
url="${NOTIFY_WEBHOOK_URL:-}"

if [ -z "$url" ]; then
  echo "::notice::notify-webhook: NOTIFY_WEBHOOK_URL is not set, so no alert was sent for $workflow (set the repository secret NOTIFY_WEBHOOK_URL to get one)"
  exit 0
fi

# scheme://host[:port] of the webhook, never its user info, path or query.
masked="$(printf '%s' "$url" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://)?([^/@?#]*@)?([^/?#]*).*#\1\3/...#')"
case "$url" in
  http://* | https://*) ;;
  *)
    echo "::error::notify-webhook: NOTIFY_WEBHOOK_URL ($masked) is not an http:// or https:// URL; set it to the webhook's full URL" >&2
    exit 1
    ;;
esac

if [ -r "$summary" ] && jq -e 'type == "object"' "$summary" > /dev/null 2>&1; then
  summary_json="$(cat "$summary")"
else
  echo "::warning::notify-webhook: no readable summary at $summary (the run stopped before writing it); the alert names no services or keys"
  summary_json='{}'
fi

run_url=""
if [ -n "${GITHUB_SERVER_URL:-}" ] && [ -n "${GITHUB_REPOSITORY:-}" ] && [ -n "${GITHUB_RUN_NUMBER:-}" ]; then
  run_url="${GITHUB_SERVER_URL%/}/${GITHUB_REPOSITORY}/actions/runs/${GITHUB_RUN_NUMBER}"
fi

body_file="$(mktemp "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/notify-webhook.XXXXXXXXXX")"
trap 'rm -f "$body_file" "$body_file.err"' EXIT
printf '%s' "$summary_json" | jq -c \
  --arg workflow "$workflow" \
  --arg repository "${GITHUB_REPOSITORY:-}" \
  --arg event "${GITHUB_EVENT_NAME:-}" \
  --arg run_url "$run_url" '
  def name: select(type == "string" and test("^[A-Za-z][A-Za-z0-9_.-]{0,63}$"));
  def names: [(. // [])[]? | name] | unique;
  def phrase: select(type == "string" and test("^[A-Za-z0-9 ,:._-]{1,80}$"));
  ((.verdict | phrase) // "failed") as $v
  | ((.workflow | name | select(. != $workflow)) // null) as $step
  | (if $step then "\($step): \($v)" else $v end) as $verdict
  | (.services | names) as $services
  | (.keys | names) as $keys
  | {
      workflow: $workflow,
      verdict: $verdict,
      services: $services,
      keys: $keys,
      repository: (if $repository == "" then null else $repository end),
      event: (if $event == "" then null else $event end),
      run_url: (if $run_url == "" then null else $run_url end),
      text: ("\($workflow) failed: \($verdict)"
             + (if $services == [] then "" else "; services: \($services | join(", "))" end)
             + (if $keys == [] then "" else "; keys: \($keys | join(", "))" end)
             + (if $run_url == "" then "" else " - \($run_url)" end))
    }' > "$body_file"

# URL and token reach curl on stdin (its config), never on the command line.
quote() { local s="${1//\\/\\\\}"; printf '"%s"' "${s//\"/\\\"}"; }
config="url = $(quote "$url")"
if [ -n "${NOTIFY_WEBHOOK_TOKEN:-}" ]; then
  config="$config"$'\n'"header = $(quote "Authorization: Bearer $NOTIFY_WEBHOOK_TOKEN")"
fi

set +e
status="$(printf '%s\n' "$config" | curl --config - --silent --show-error --max-time 30 \
  --request POST --header 'Content-Type: application/json' --data-binary "@$body_file" \
  --output /dev/null --write-out '%{http_code}' 2> "$body_file.err")"
rc=$?
set -e
err="$(head -c 300 "$body_file.err" 2> /dev/null | tr -d '\r' | head -n 1)"
rm -f "$body_file.err"
err="${err//"$url"/"$masked"}"

if [ "$rc" -ne 0 ]; then
  echo "::error::notify-webhook: the alert for $workflow was NOT delivered to $masked: curl failed (exit $rc: ${err:-no detail}). Check that NOTIFY_WEBHOOK_URL is reachable from the runner." >&2
  exit 1
fi
case "$status" in
  2??) echo "notify-webhook: alert for $workflow delivered to $masked (HTTP $status)" ;;
  *)
    echo "::error::notify-webhook: the alert for $workflow was NOT delivered: $masked answered HTTP $status (401/403: check NOTIFY_WEBHOOK_TOKEN against the webhook's header auth; 404: the webhook is not active or the URL is wrong)." >&2
    exit 1
    ;;
esac
