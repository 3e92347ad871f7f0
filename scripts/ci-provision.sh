#!/usr/bin/env bash
# The first step of every workflow: makes a stock Forgejo runner able to run it, whatever image or host
# it runs on. It checks for the programs the job needs, installs missing Debian packages when it may
# (root with apt-get, as in the default docker://node:*-bookworm image), and, unless --tools-only,
# provides ansible-core pinned in requirements-runner.txt in a virtualenv that is reused by later runs
# (HOMELAB_SSO_TOOLS, default ~/.cache/homelab-sso/tools-<hash of the requirements>; mount that
# directory as a volume on docker runners to keep it between jobs). The venv's bin/ goes on the job's
# PATH through GITHUB_PATH.
#
#   scripts/ci-provision.sh               operational workflows: ssh, jq, curl, python3 + ansible-core
#   scripts/ci-provision.sh --tools-only  deploys: ssh, jq and curl only
set -euo pipefail
cd "$(dirname "$0")/.."

tools_only=false
[ "${1:-}" = "--tools-only" ] && tools_only=true

# program -> Debian package
declare -A need=([ssh]=openssh-client [jq]=jq [curl]=curl)
if ! $tools_only; then need[python3]=python3; fi

missing=()
for prog in "${!need[@]}"; do
  command -v "$prog" >/dev/null 2>&1 || missing+=("${need[$prog]}")
done
if ! $tools_only && command -v python3 >/dev/null 2>&1 && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing+=(python3-venv)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "provision: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "provision: this runner lacks ${missing[*]} and cannot install them (not root, or no apt-get): install them on the runner's host or image" >&2
    exit 1
  fi
fi
$tools_only && { echo "provision: ok (ssh, jq, curl)"; exit 0; }

req=requirements-runner.txt
hash=$(sha256sum "$req" | cut -c1-16)
venv=${HOMELAB_SSO_TOOLS:-${HOME:-/root}/.cache/homelab-sso/tools-$hash}
pinned=$(sed -n 's/^ansible-core==//p' "$req")
# The version is read whole before it is matched: in a pipeline into `head`/`grep -q`, the
# program can die of SIGPIPE, and with pipefail a matching venv then looked missing.
version=$("$venv/bin/ansible-playbook" --version 2>/dev/null || true)
if [[ "${version%%$'\n'*}" == *"[core $pinned]"* ]]; then
  echo "provision: reusing $venv"
else
  echo "provision: installing ansible-core $pinned into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
fi
echo "$venv/bin" >> "${GITHUB_PATH:-/dev/null}"
echo "provision: ok ($("$venv/bin/ansible-playbook" --version | head -n 1))"
