#!/usr/bin/env bash
# `make lint`: Rust formatting, clippy and function lengths (scripts/fn-lengths.py), workflow lint,
# shell lint, ansible-lint with the collection installed (built from debug binaries) so that the
# playbooks' FQCNs resolve, and the collection by the ecosystem's own tools: the changelog fragments
# (antsibull-changelog lint), ansible-test sanity on the installed tarball, galaxy-importer on the
# tarball, and every module's EXAMPLES through ansible-lint (an e2e test).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
scripts/fn-lengths.py
"$VENV/bin/actionlint" -config-file .forgejo/actionlint.yaml .forgejo/workflows/*.yml
shellcheck scripts/*.sh .ci/run crates/lab/src/servers/pct-standin.sh
(cd ansible/collection && "$VENV/bin/antsibull-changelog" lint)
# shellcheck disable=SC2046 # one word per cargo argument
cargo build -q $(scripts/modules.sh -p)
scripts/install-modules.sh debug
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/ansible-galaxy" collection build ansible/collection --output-path "$tmp/dist" >/dev/null
"$VENV/bin/ansible-galaxy" collection install "$tmp"/dist/*.tar.gz -p "$tmp/collections" --offline >/dev/null
ANSIBLE_COLLECTIONS_PATH="$tmp/collections" "$VENV/bin/ansible-lint" ansible/playbooks
scripts/sanity.sh "$tmp"/dist/*.tar.gz
scripts/galaxy-importer.sh "$tmp"/dist/*.tar.gz
cargo test -q -p e2e --test playbooks collection_examples_pass_ansible_lint_as_a_playbook
echo "lint: ok"
