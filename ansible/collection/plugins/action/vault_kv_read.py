# Copyright: Homelab SSO maintainers
# MIT License (see LICENSE)
"""vault_kv_read: runs the installed binary in place under connection local (see plugin_utils/in_place.py).

The module returns its key/values twice, as ``secret`` and under the deprecated name ``data``, with a
deprecation entry. Where ansible-core has data tagging (2.19 and later) that entry becomes a
deprecation tag on ``data`` itself, so ansible-core warns when a playbook reads ``data``, not on
every run of a playbook that reads ``secret``. Elsewhere, or if tagging fails, the entry stays in
the result and ansible-core shows it as a plain deprecation warning.
"""

from __future__ import annotations

try:
    from ansible.module_utils.datatag import deprecate_value
except ImportError:
    deprecate_value = None

from ansible_collections.homelab.sso.plugins.plugin_utils.in_place import InPlaceBinaryAction

DATA_RENAMED = "vault_kv_read's `data` is renamed `secret`"


class ActionModule(InPlaceBinaryAction):

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if deprecate_value is None:
            return result
        deprecations = result.get('deprecations') or []
        renamed = [d for d in deprecations if isinstance(d, dict) and str(d.get('msg', '')).startswith(DATA_RENAMED)]
        if renamed and isinstance(result.get('data'), dict):
            entry = renamed[0]
            try:
                tagged = deprecate_value(
                    result['data'],
                    entry['msg'],
                    version=entry.get('version'),
                    collection_name=entry.get('collection_name'),
                )
            except Exception:  # pylint: disable=broad-except
                return result  # the plain deprecation warning instead; the result is unchanged
            result['data'] = tagged
            result['deprecations'] = [d for d in deprecations if d not in renamed]
        return result
