# -*- coding: utf-8 -*-

# Copyright: (c) 2026, Homelab SSO maintainers
# MIT License (see LICENSE in the collection)
from __future__ import annotations


class ModuleDocFragment(object):

    # The Vault/OpenBao server: the options of ConnParams (crates/vault_kv/src/conn.rs)
    # that are not authentication.
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Address of the Vault or OpenBao server, for example C(https://vault.example.org:8200).
        Credentials in the URL (C(https://user:pw@host)) are refused. Falls back to E(VAULT_ADDR).
    type: str
    required: true
    aliases: [addr]
  namespace:
    description: Namespace, sent as C(X-Vault-Namespace). Falls back to E(VAULT_NAMESPACE).
    type: str
  ca_cert:
    description:
      - PEM file with the CA of the server's certificate (a self-signed server certificate works too).
        Without it the system's CA store is used. Falls back to E(VAULT_CACERT).
    type: path
    aliases: [cacert]
  validate_certs:
    description:
      - Verify the server's TLS certificate. If unset, the inverse of E(VAULT_SKIP_VERIFY), else true.
    type: bool
  timeout:
    description: Seconds per HTTP request, 1 to 3600 (reads are retried with backoff; writes never).
    type: int
    default: 30
  retries:
    description:
      - Further attempts, with exponential backoff and C(Retry-After), for reads after a connection error or HTTP
        429/5xx answer. 0 to 10. Writes are never repeated (a repeated write could create a second version).
    type: int
    default: 3
"""

    # Where the secret is (KvPath): the KV v2 mount and the path inside it.
    KV_PATH = r"""
options:
  mount:
    description: KV v2 mount. C(.) and C(..) segments are refused (they would address another URL path).
    type: str
    default: secret
    aliases: [engine_mount_point]
  path:
    description: Secret path inside the mount. C(.) and C(..) segments are refused (they would address another URL path).
    type: str
    required: true
"""
