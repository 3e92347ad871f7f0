#!/usr/bin/env bash
# `ansible-test sanity` on the collection as Galaxy users install it (ansible-test needs an
# ansible_collections/<namespace>/<name> tree): the built tarball, installed, with two changes.
# - The module binaries (bin/) and the symlinks to them are removed: validate-modules opens every
#   file in plugins/modules as text (an ELF binary crashes it with UnicodeDecodeError, and a file
#   without .py/.ps1 would be `invalid-extension`), while a sidecar .yml with no file beside it is
#   validated as the module's documentation - which, for a binary module, is everything there is
#   for it to check. So are the listing stubs <module>.ini (comments only, for `ansible-doc -l`),
#   which validate-modules would take for modules of their own.
# - tests/sanity/ignore-2.19.txt is copied in from the source tree: it is kept out of the tarball
#   (galaxy.yml build_ignore) because galaxy-importer warns about any ignore file it ships.
# --venv: ansible-test pip-installs its pinned test requirements from PyPI into venvs of its own.
# Usage: scripts/sanity.sh TARBALL [ansible-test sanity options]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
VENV=${VENV:-$root/.venv}
# ansible-test --python 3.11 looks for python3.11 on PATH; the venv has one.
export PATH="$VENV/bin:$PATH"
tarball=$(realpath "$1")
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$VENV/bin/ansible-galaxy" collection install --offline -p "$tmp" "$tarball" >/dev/null
dest="$tmp/ansible_collections/homelab/sso"
for doc in "$dest"/plugins/modules/*.yml; do
  rm -f "${doc%.yml}" "${doc%.yml}.ini"
done
rm -rf "${dest:?}/bin"
mkdir -p "$dest/tests/sanity"
cp ansible/collection/tests/sanity/ignore-*.txt "$dest/tests/sanity/"
# ansible-test bootstraps pip in its venvs with a script it downloads from a host outside PyPI
# (ci-files.testing.ansible.com); it first looks for it in a cache under HOME, so a private HOME
# holds a stand-in that gets the same pip version from PyPI.
pip_version=$("$VENV/bin/python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
from ansible_test._internal.host_configs import NativePythonConfig
print(get_venv_packages(NativePythonConfig(version="3.11", path="/usr/bin/python3.11"))["pip"])
PY
)
# pip downloads are cached across runs (target/ is not versioned).
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$root/target/ansible-test-pip-cache}"
export HOME="$tmp/home"
mkdir -p "$HOME/.ansible/test/cache"
cp scripts/get-pip-from-pypi.py "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
cd "$dest"
"$VENV/bin/ansible-test" sanity --venv --python 3.11 --color no "$@"
