# Copyright: Homelab SSO maintainers
# MIT License (see LICENSE)
"""drift_rows: the drift check's service/key table (tasks/drift-compare.yml), from the salted
fingerprints of Vault's values and of the deployed ones, and Grafana's applied admin password.

In Python rather than in the task's Jinja: Ansible compiles every template again in each task's
worker process, and this comparison as a template cost the task about as much as everything else
in it. Names, key names and states only: a fingerprint or a salt is compared, never returned."""

from __future__ import annotations

import hashlib

# How far back the Grafana record's version is looked for (the record names one Vault version).
_GRAFANA_VERSIONS_SEARCHED = 1000
_GRAFANA_KEY = 'grafana_admin_password (applied to Grafana)'


def _row(service, key, state):
    return {'service': service, 'key': key, 'state': state}


def _grafana_state(target, salt, latest, changed):
    """The state of the loki-stack deploy's record (.grafana-admin-applied) against Vault."""
    status = target.get('status')
    if status == 'file_missing':
        return 'not recorded'
    if status != 'ok':
        return status
    fingerprint = (target.get('fingerprints') or {}).get('grafana_admin_applied', '')
    found = 0
    if fingerprint:
        for version in range(latest, max(latest - _GRAFANA_VERSIONS_SEARCHED, 0), -1):
            if hashlib.sha256(('%sversion-%d' % (salt, version)).encode('utf-8')).hexdigest() == fingerprint:
                found = version
                break
    if not found:
        return 'NOT APPLIED (the record names no version of %d or before)' % latest
    if found < changed:
        return "NOT APPLIED (Grafana holds version %d's password; Vault changed it in version %d)" % (found, changed)
    return 'in sync'


def drift_rows(vault, nodes, deployed, salt, services, selected, grafana_service):
    """Rows {service, key, state}: each deployed key against Vault's, a failing row for each
    selected service of a node whose harvest failed, then the Grafana record's row.

    vault: the vault_kv_read result (fingerprints, version, key_ages); nodes and deployed: the
    Proxmox nodes and each one's env_harvest result, in the same order; selected: the services
    compared (drift_selected); grafana_service: the name of the service that holds Grafana's password.
    """
    vault = vault or {}
    vault_fp = vault.get('fingerprints') or {}
    grafana_target = '%s (Grafana)' % grafana_service
    rows = []
    grafana = []
    age = (vault.get('key_ages') or {}).get('grafana_admin_password') or {}
    changed = int(age.get('changed_in') or age.get('unchanged_since') or 1)
    latest = int(vault.get('version') or 0)
    for node, result in zip(nodes, deployed):
        result = result or {}
        # A node whose harvest failed proves nothing about its services.
        if result.get('failed'):
            for s in services:
                if s.get('node') == node and s.get('name') in selected and s.get('keys'):
                    rows.append(_row(s['name'], '-', 'NOT READ (the harvest on %s failed, see above)' % node))
        for target in result.get('targets') or []:
            if target.get('name') == grafana_target:
                grafana.append(_row(grafana_service, _GRAFANA_KEY, _grafana_state(target, salt, latest, changed)))
                continue
            if target.get('status') != 'ok':
                rows.append(_row(target.get('name'), '-', target.get('status')))
            for key, fingerprint in (target.get('fingerprints') or {}).items():
                if key not in vault_fp:
                    state = 'not in Vault'
                else:
                    state = 'in sync' if vault_fp[key] == fingerprint else 'DRIFT'
                rows.append(_row(target.get('name'), key, state))
            for key in target.get('missing_keys') or []:
                rows.append(_row(target.get('name'), key, 'missing from .env'))
    return rows + grafana


class FilterModule:
    """The drift check's comparison."""

    def filters(self):
        return {'drift_rows': drift_rows}
