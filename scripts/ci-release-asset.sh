#!/usr/bin/env bash
# Attaches dist/homelab-sso-*.tar.gz to the Forgejo release of $TAG (creating the release if needed).
set -euo pipefail
: "${API:?}" "${TAG:?}" "${FORGEJO_TOKEN:?}"
asset=$(find dist -maxdepth 1 -name "homelab-sso-*.tar.gz" | sort -V | tail -n 1)
auth=(-H "Authorization: token ${FORGEJO_TOKEN}")
# The release body: dist/release-notes.md (the changelog's section for this version) when present.
body=$(python3 -c 'import json,os,sys; p=sys.argv[1]; print(json.dumps(open(p).read() if os.path.exists(p) else ""))' dist/release-notes.md)
id=$(curl -fsS "${auth[@]}" "$API/releases/tags/$TAG" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' 2>/dev/null || true)
if [ -z "$id" ]; then
  id=$(curl -fsS "${auth[@]}" -H 'Content-Type: application/json' -d "{\"tag_name\": \"$TAG\", \"name\": \"$TAG\", \"body\": $body}" "$API/releases" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
elif [ "$body" != '""' ]; then
  curl -fsS "${auth[@]}" -X PATCH -H 'Content-Type: application/json' -d "{\"body\": $body}" "$API/releases/$id" > /dev/null
fi
curl -fsS "${auth[@]}" -F "attachment=@${asset}" "$API/releases/$id/assets?name=$(basename "$asset")" > /dev/null
echo "attached $(basename "$asset") to release $TAG"
