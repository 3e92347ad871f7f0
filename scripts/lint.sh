#!/usr/bin/env bash
# `make lint`: Rust formatting and clippy, workflow lint, shell lint, and ansible-lint with the
# collection installed (built from debug binaries) so that the playbooks' FQCNs resolve.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
"$VENV/bin/actionlint" -config-file .forgejo/actionlint.yaml .forgejo/workflows/*.yml
shellcheck scripts/*.sh .ci/run crates/lab/src/servers/pct-standin.sh
cargo build -q -p vault_full_write -p env_harvest -p pocketid_client -p redeploy_trigger
scripts/install-modules.sh debug
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/ansible-galaxy" collection build ansible/collection --output-path "$tmp/dist" >/dev/null
"$VENV/bin/ansible-galaxy" collection install "$tmp"/dist/*.tar.gz -p "$tmp/collections" --offline >/dev/null
ANSIBLE_COLLECTIONS_PATH="$tmp/collections" "$VENV/bin/ansible-lint" ansible/playbooks
echo "lint: ok"
