# -*- coding: utf-8 -*-

# Copyright: (c) 2026, Homelab SSO maintainers
# MIT License (see LICENSE in the collection)
from __future__ import annotations


class ModuleDocFragment(object):

    # A Forgejo repository's Actions API (ForgejoConn in crates/forgejo_dispatch/src/client.rs).
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Forgejo base URL, for example C(https://forgejo.example.org). Credentials in the URL are refused.
        Falls back to E(FORGEJO_URL).
    type: str
    required: true
  token:
    description:
      - Access token with the C(write:repository) scope; its user needs write access to the repository's Actions.
        Falls back to E(FORGEJO_TOKEN).
    type: str
    required: true
  repo:
    description:
      - The repository holding the workflows, as C(owner/name). C(.) and C(..) segments are refused (they would
        address another URL path).
    type: str
    required: true
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  ca_cert:
    description:
      - PEM file of the CA that signed Forgejo's certificate. Without it the system's CA store is used.
        Falls back to E(FORGEJO_CACERT).
    type: path
  timeout:
    description:
      - Seconds per HTTP request, 1 to 3600.
      - Called O(request_timeout) in version 1.0.0 of this collection, which is still accepted as an alias.
    type: int
    default: 30
    aliases: [request_timeout]
  retries:
    description:
      - Further attempts, with exponential backoff and C(Retry-After), for reads (workflow files, run status) after
        a connection error or HTTP 429/5xx answer. 0 to 10. A dispatch is never repeated.
    type: int
    default: 3
"""
