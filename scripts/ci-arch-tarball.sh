#!/usr/bin/env bash
# Renames the tarball `make build` left in dist/ (homelab-sso-<version>.tar.gz) to
# homelab-sso-<version>-linux-<arch>.tar.gz, after checking that this machine is of that architecture:
# the binaries inside are native, so a runner registered under the wrong label must not publish them.
#
#   ARCH  x86_64 or aarch64 (as `uname -m` prints it)
#   DIST  where the tarball is (default: dist)
set -euo pipefail
: "${ARCH:?ARCH (x86_64 or aarch64)}"
dist=${DIST:-dist}
machine=$(uname -m)
if [ "$machine" != "$ARCH" ]; then
  echo "arch-tarball: this runner is $machine, but the job builds for $ARCH: check the runner's labels" >&2
  exit 1
fi
shopt -s nullglob extglob
tarballs=("$dist"/homelab-sso-+([0-9.]).tar.gz)
if ((${#tarballs[@]} != 1)); then
  echo "arch-tarball: expected one homelab-sso-<version>.tar.gz in $dist, found ${#tarballs[@]} (run make build first)" >&2
  exit 1
fi
src=${tarballs[0]}
dest=${src%.tar.gz}-linux-$ARCH.tar.gz
mv -- "$src" "$dest"
echo "arch-tarball: $(basename "$dest")"
