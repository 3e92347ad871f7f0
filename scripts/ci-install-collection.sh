#!/usr/bin/env bash
# Installs the homelab.sso collection for a workflow run, never compiling anything:
#
# - HOMELAB_SSO_COLLECTION set (an explicit tarball path or URL): that, as it is (an override for
#   a runner without API access or a test build; nothing is verified).
# - Otherwise the release of this repository tagged HOMELAB_SSO_VERSION (e.g. v1.2.0), or the
#   latest release when that is empty: its tarball for this machine's architecture
#   (homelab-sso-<version>-linux-<uname -m>.tar.gz; on x86_64 also an older release's
#   homelab-sso-<version>.tar.gz) is downloaded, its SHA-256 checked against the release's SHA256SUMS
#   asset (both made by the release workflow, ci-release-asset.sh), and only then installed.
#
#   FORGEJO_API         ${{ github.api_url }}, e.g. https://git.example.org/api/v1
#   FORGEJO_REPOSITORY  ${{ github.repository }} (owner/name)
#   FORGEJO_TOKEN       ${{ github.token }}: the job's own token, which may read this repository
#                       (its releases are private when the repository is). Sent in a header read
#                       from stdin, never on a command line or in the log; only to FORGEJO_API's host.
set -euo pipefail
dest=ansible/collections

src=${HOMELAB_SSO_COLLECTION:-}
if [ -n "$src" ]; then
  offline=()
  case "$src" in http://*|https://*) ;; *) offline=(--offline) ;; esac
  ansible-galaxy collection install "$src" -p "$dest" --force "${offline[@]}"
  exit 0
fi

die() { echo "install-collection: $*" >&2; exit 1; }
: "${FORGEJO_API:?FORGEJO_API (the workflow sets it to github.api_url)}"
: "${FORGEJO_REPOSITORY:?FORGEJO_REPOSITORY (the workflow sets it to github.repository)}"
: "${FORGEJO_TOKEN:?FORGEJO_TOKEN (the workflow sets it to github.token)}"
api=${FORGEJO_API%/}
origin=$(printf '%s\n' "$api" | sed -E 's#^([a-z]+://[^/]+).*#\1#')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# get URL FILE: the status in $code. The token goes only to Forgejo itself, not to an external
# asset URL on another host.
get() {
  local auth=""
  case "$1" in "$origin"/*) auth="header = \"Authorization: token ${FORGEJO_TOKEN}\"" ;; esac
  code=$(curl -sS -L -o "$2" -w '%{http_code}' -K- "$1" <<<"$auth") || code=000
}

version=${HOMELAB_SSO_VERSION:-}
if [ -n "$version" ]; then
  what="release $version"
  get "$api/repos/$FORGEJO_REPOSITORY/releases/tags/$version" "$work/release.json"
  missing="$FORGEJO_REPOSITORY has no release tagged $version (the repository variable HOMELAB_SSO_VERSION): set it to an existing tag, or publish $version with the release workflow"
else
  what="the latest release"
  get "$api/repos/$FORGEJO_REPOSITORY/releases/latest" "$work/release.json"
  missing="$FORGEJO_REPOSITORY has no published release: publish one with the release workflow (push a v* tag), or set the repository variable HOMELAB_SSO_COLLECTION to a tarball"
fi
case $code in
  200) ;;
  404) die "$missing" ;;
  *) die "reading $what of $FORGEJO_REPOSITORY failed (HTTP $code)" ;;
esac
tag=$(jq -r .tag_name "$work/release.json")
asset() { jq -r --arg re "$1" '[.assets[] | select(.name | test($re))] | first // empty | "\(.name) \(.browser_download_url)"' "$work/release.json"; }
arch=$(uname -m)
read -r tar_name tar_url < <(asset "^homelab-sso-[0-9.]+-linux-${arch}\\.tar\\.gz\$") || true
# Releases before the per-architecture names held one x86_64 tarball.
if [ -z "${tar_name:-}" ] && [ "$arch" = x86_64 ]; then
  read -r tar_name tar_url < <(asset '^homelab-sso-[0-9.]+\.tar\.gz$') || true
fi
read -r sums_name sums_url < <(asset '^SHA256SUMS$') || true
[ -n "${tar_name:-}" ] || die "release $tag has no tarball for $arch (homelab-sso-<version>-linux-$arch.tar.gz): build it with the release workflow on a $arch runner, or build from source (make build) and set HOMELAB_SSO_COLLECTION"
[ -n "${sums_name:-}" ] || die "release $tag has no SHA256SUMS asset, so $tar_name cannot be verified: re-run the release workflow for $tag"
case "$tar_name" in */*|.*) die "release $tag has an asset with an unsafe name: $tar_name" ;; esac

get "$sums_url" "$work/SHA256SUMS"
[ "$code" = 200 ] || die "downloading SHA256SUMS of $tag failed (HTTP $code)"
expected=$(awk -v f="$tar_name" '$2 == f || $2 == "*" f { print $1; exit }' "$work/SHA256SUMS")
[ -n "$expected" ] || die "SHA256SUMS of $tag has no line for $tar_name"
get "$tar_url" "$work/$tar_name"
[ "$code" = 200 ] || die "downloading $tar_name of $tag failed (HTTP $code)"
actual=$(sha256sum "$work/$tar_name" | cut -d' ' -f1)
if [ "$actual" != "$expected" ]; then
  die "checksum mismatch for $tar_name of $tag: SHA256SUMS says $expected, the download is $actual; refusing to install it"
fi
echo "install-collection: $tar_name of $tag, sha256 $actual verified"
ansible-galaxy collection install "$work/$tar_name" -p "$dest" --force --offline
