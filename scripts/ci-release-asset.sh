#!/usr/bin/env bash
# Publishes the collection tarballs and their checksum file as assets of the Forgejo release of $TAG
# (creating the release if needed): every dist/homelab-sso-*.tar.gz (one per architecture,
# homelab-sso-<version>-linux-<arch>.tar.gz, from the release workflow's build matrix) and one
# SHA256SUMS over them, the file the operational workflows verify a tarball against before installing
# it (ci-install-collection.sh). A re-run replaces assets of the same name, so the release always
# holds one matching set.
#
#   API            https://git.example.org/api/v1/repos/<owner>/<repo>
#   TAG            the release's tag, e.g. v1.2.0
#   FORGEJO_TOKEN  a token allowed to write releases (sent in a header read from stdin: it is on
#                  no command line and in no log)
#   DIST           where the tarballs are (default: dist; it should hold this release's only); its
#                  release-notes.md (the changelog's section for this version), when present,
#                  becomes the release's body
set -euo pipefail
: "${API:?}" "${TAG:?}" "${FORGEJO_TOKEN:?}"
dist=${DIST:-dist}
mapfile -t assets < <(find "$dist" -maxdepth 1 -name "homelab-sso-*.tar.gz" | sort -V)
if ((${#assets[@]} == 0)); then
  echo "release: no homelab-sso-*.tar.gz in $dist (run make build first)" >&2
  exit 1
fi
sums="$dist/SHA256SUMS"
(cd "$dist" && for a in "${assets[@]}"; do sha256sum "$(basename "$a")"; done) > "$sums"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# call METHOD URL [curl args…]: the status in $code, the body in $out.
call() {
  local method=$1 url=$2
  shift 2
  code=$(curl -sS -o "$out" -w '%{http_code}' -X "$method" -K- "$@" "$url" \
    <<<"header = \"Authorization: token ${FORGEJO_TOKEN}\"")
}
fail() {
  echo "release: $1 (HTTP $code: $(head -c 300 "$out"))" >&2
  exit 1
}

notes=""
if [ -f "$dist/release-notes.md" ]; then notes=$(cat "$dist/release-notes.md"); fi
call GET "$API/releases/tags/$TAG"
case $code in
  200)
    id=$(jq -r .id "$out")
    if [ -n "$notes" ]; then
      call PATCH "$API/releases/$id" -H 'Content-Type: application/json' \
        --data-binary "$(jq -n --arg b "$notes" '{body: $b}')"
      [ "$code" = 200 ] || fail "writing the release notes of $TAG failed"
    fi
    ;;
  404)
    body=$(jq -n --arg t "$TAG" --arg b "$notes" '{tag_name: $t, name: $t, body: $b}')
    call POST "$API/releases" -H 'Content-Type: application/json' --data-binary "$body"
    [ "$code" = 201 ] || fail "creating the release of $TAG failed"
    ;;
  *) fail "reading the release of $TAG failed" ;;
esac
id=$(jq -r .id "$out")
for file in "${assets[@]}" "$sums"; do
  base=$(basename "$file")
  call GET "$API/releases/$id/assets"
  [ "$code" = 200 ] || fail "listing the assets of $TAG failed"
  for old in $(jq -r --arg n "$base" '.[] | select(.name == $n) | .id' "$out"); do
    call DELETE "$API/releases/$id/assets/$old"
    [ "$code" = 204 ] || fail "replacing $base failed"
  done
  call POST "$API/releases/$id/assets?name=$base" -F "attachment=@$file"
  [ "$code" = 201 ] || fail "attaching $base failed"
  echo "release: attached $base to $TAG"
done
while read -r sum name; do echo "release: $TAG sha256 $sum  $name"; done < "$sums"
