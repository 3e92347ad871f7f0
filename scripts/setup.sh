#!/usr/bin/env bash
# Installs everything the tests and the demo need, idempotently: Debian packages, a pinned Python
# virtualenv (ansible-core, OpenBao, act, actionlint, ansible-lint) and the Rust crates.
set -euo pipefail
cd "$(dirname "$0")/.."

# perl and make build the OpenSSL that env_harvest links statically; binutils (objdump) checks the
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
cargo fetch --locked -q 2>/dev/null || cargo fetch -q
echo "setup: ok"
