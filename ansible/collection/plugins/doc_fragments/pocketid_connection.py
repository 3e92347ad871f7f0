# -*- coding: utf-8 -*-

# Copyright: (c) 2026, Homelab SSO maintainers
# MIT License (see LICENSE in the collection)
from __future__ import annotations


class ModuleDocFragment(object):

    # The PocketID server (server_options() in crates/pocketid/src/api.rs).
    DOCUMENTATION = r"""
options:
  url:
    description:
      - PocketID base URL (its C(APP_URL)); the API is under C(/api). Credentials in the URL are refused.
        Falls back to E(POCKETID_URL).
    type: str
    required: true
  validate_certs:
    description: Verify the server's TLS certificate.
    type: bool
    default: true
  ca_cert:
    description:
      - PEM file of the CA that signed PocketID's certificate. Without it the system's CA store is used.
        Falls back to E(POCKETID_CACERT).
    type: path
  timeout:
    description:
      - Seconds per HTTP request, 1 to 3600, and for reading a whole paginated list (checked between pages).
    type: int
    default: 30
  retries:
    description:
      - Further attempts, with exponential backoff and C(Retry-After), for the requests that are safe to repeat
        (reads, updates, deletes and revocations) after a connection error or HTTP 429/5xx answer. 0 to 10.
      - A request that creates something (a client, a client secret, a login code) is never repeated after an error;
        only a 429 (the rate limiter's answer, sent before anything was processed) is re-sent, up to 5 times.
    type: int
    default: 5
"""

    # The admin API key (connection_options() adds it to the server's options).
    API_KEY = r"""
options:
  api_key:
    description:
      - API key of an enabled admin user, sent as C(X-API-Key). Falls back to E(POCKETID_API_KEY) (preferred - it
        shows in no task argument).
    type: str
    required: true
"""
