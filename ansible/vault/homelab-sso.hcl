# The Vault/OpenBao policy of the homelab-sso AppRole: exactly what the playbooks and the deploy
# workflows need, nothing else. Load it with `bao policy write homelab-sso ansible/vault/homelab-sso.hcl`
# (or `vault policy write …`); the lab loads this same file.

# secret/homelab-sso: read and fingerprint it (drift check, preflight), write it in one full version
# (rotation, backfill) or patch it (pocketid-setup), with check-and-set from the metadata and the key
# guards from the key names when values may not be read. `read` on data covers older versions too
# (vault_kv_read key_ages compares them). On metadata: `read` for check-and-set and key ages,
# `patch` to record each key's last change in custom_metadata (rotated/<key>) after a write.
path "secret/data/homelab-sso" {
  capabilities = ["create", "read", "update", "patch"]
}
path "secret/metadata/homelab-sso" {
  capabilities = ["read", "patch"]
}
path "secret/subkeys/homelab-sso" {
  capabilities = ["read"]
}

# secret/pocketid: the PocketID API key (pocketid-api-key.yml patches api_key; other keys stay),
# with its last change recorded as for secret/homelab-sso.
path "secret/data/pocketid" {
  capabilities = ["create", "read", "update", "patch"]
}
path "secret/metadata/pocketid" {
  capabilities = ["read", "patch"]
}
path "secret/subkeys/pocketid" {
  capabilities = ["read"]
}

# The AppRole's own secret_id: sso-status reports when it was created and expires (vault_kv_read
# `auth_info`; the secret_id itself is never returned). Vault takes the lookup as a POST, hence
# `update`, and only on this role: the lookup of another role's secret_ids stays denied.
path "auth/approle/role/homelab-sso/secret-id/lookup" {
  capabilities = ["update"]
}
