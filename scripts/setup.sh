#!/usr/bin/env bash
# Installs everything the tests and the demo need, idempotently: Debian packages, a pinned Python
# virtualenv (ansible-core, OpenBao, act, actionlint, ansible-lint) and the Rust crates.
set -euo pipefail
cd "$(dirname "$0")/.."

# perl and make build the OpenSSL that the SSH transport (proxmox_ssh) links statically; binutils (objdump) checks the
# binaries' glibc needs; curl and jq run the deploy script (scripts/deploy-service.sh) in the lab.
DEB_PACKAGES=(openssh-server openssh-client perl make binutils shellcheck procps curl jq)
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.requirements.stamp"

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's postinst starts and enables a system sshd; the lab runs its own on free ports.
  if command -v systemctl >/dev/null && systemctl is-active --quiet ssh 2>/dev/null; then
    $SUDO systemctl stop ssh || true
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || ! cmp -s requirements-dev.txt "$STAMP"; then
  echo "setup: installing Python tools from requirements-dev.txt"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt
  cp requirements-dev.txt "$STAMP"
fi

scripts/ansible-matrix.sh

# The compatibility matrix logs in over ssh as another user than the controller's when
# HOMELAB_SSO_MATRIX_SSH_USER names one (CI sets it: .ci/run). Only asked for, and only as root,
# is that user created here (unprivileged, no password, a home for Ansible's remote_tmp);
# without it the matrix logs in as the current user (tests/ansible_matrix.rs).
matrix_user=${HOMELAB_SSO_MATRIX_SSH_USER:-}
if [ -n "$matrix_user" ] && ! id -u "$matrix_user" >/dev/null 2>&1; then
  if ! [[ $matrix_user =~ ^[a-z_][a-z0-9_-]{0,30}$ ]]; then
    echo "setup: HOMELAB_SSO_MATRIX_SSH_USER=$matrix_user is not a valid user name" >&2
    exit 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: HOMELAB_SSO_MATRIX_SSH_USER=$matrix_user does not exist, and only root may create it: run make setup as root, create the user yourself, or unset the variable (the matrix then logs in as you)" >&2
    exit 1
  fi
  echo "setup: creating the unprivileged user $matrix_user (the matrix's ssh login)"
  # '*': no password, yet not locked (sshd refuses a locked account even with a key).
  useradd --system --create-home --shell /bin/bash --password '*' \
    --comment "homelab-sso compatibility matrix (ssh login)" "$matrix_user"
fi
cargo fetch --locked -q 2>/dev/null || cargo fetch -q
echo "setup: ok"
