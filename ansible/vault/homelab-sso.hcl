# The Vault/OpenBao policy of the homelab-sso AppRole: exactly what the playbooks and the deploy
# workflows need, nothing else. Load it with `bao policy write homelab-sso ansible/vault/homelab-sso.hcl`
# (or `vault policy write …`); the lab loads this same file.

# secret/homelab-sso: read and fingerprint it (drift check, preflight), write it in one full version
# (rotation, backfill) or patch it (pocketid-setup), with check-and-set from the metadata and the key
# guards from the key names when values may not be read.
path "secret/data/homelab-sso" {
  capabilities = ["create", "read", "update", "patch"]
}
path "secret/metadata/homelab-sso" {
  capabilities = ["read"]
}
path "secret/subkeys/homelab-sso" {
  capabilities = ["read"]
}

# secret/pocketid: the PocketID API key (pocketid-api-key.yml patches api_key; other keys stay).
path "secret/data/pocketid" {
  capabilities = ["create", "read", "update", "patch"]
}
path "secret/metadata/pocketid" {
  capabilities = ["read"]
}
path "secret/subkeys/pocketid" {
  capabilities = ["read"]
}
