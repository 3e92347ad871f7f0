#!/usr/bin/env bash
# One virtualenv per ansible-core of the compatibility matrix (tests/ansible_matrix.rs), from PyPI:
# tests/ansible-matrix/requirements-2.NN.txt pins it and names its Python (`# python: 3.NN`).
# Idempotent: a virtualenv is made again only when its requirements file changed (stamp file).
# The interpreter is found by its version (python3.NN on PATH, then pyenv's versions); a missing
# one is an error, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${ANSIBLE_MATRIX_DIR:-target/ansible-matrix}

# Prints the path of a working Python VERSION (3.NN), or fails.
find_python() {
  local version=$1 candidate found
  for candidate in "python$version" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version" \
    "/usr/local/bin/python$version" "/usr/bin/python$version"; do
    # A pyenv shim for a version that is not selected exists but fails: run it to be sure.
    found=$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2], sys.executable)' 2>/dev/null) || continue
    if [ "${found%% *}" = "$version" ]; then
      echo "${found#* }"
      return 0
    fi
  done
  return 1
}

for req in tests/ansible-matrix/requirements-*.txt; do
  minor=${req##*requirements-}
  minor=${minor%.txt}
  version=$(sed -n 's/^# python: *//p' "$req")
  venv="$dest/$minor"
  if [ -f "$venv/.stamp" ] && cmp -s "$req" "$venv/.stamp"; then
    continue
  fi
  if ! python=$(find_python "$version"); then
    echo "ansible-matrix: ansible-core $minor needs Python $version, which was not found (python$version on PATH, ${PYENV_ROOT:-$HOME/.pyenv}/versions/$version.*); install it, e.g. \`pyenv install $version\`" >&2
    exit 1
  fi
  echo "ansible-matrix: ansible-core $minor on $python"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
  cp "$req" "$venv/.stamp"
done
