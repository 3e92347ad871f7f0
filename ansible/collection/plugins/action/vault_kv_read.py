# Copyright: Homelab SSO maintainers
# MIT License (see LICENSE)
"""vault_kv_read: runs the installed binary in place under connection local (see plugin_utils/in_place.py).

The module returns its key/values twice, as ``secret`` and under the deprecated name ``data``, with a
deprecation entry. Here that entry becomes a deprecation tag on ``data`` itself, so ansible-core warns
when a playbook reads ``data``, not on every run of a playbook that reads ``secret``.
"""

from __future__ import annotations

from ansible.module_utils.datatag import deprecate_value

from ansible_collections.homelab.sso.plugins.plugin_utils.in_place import InPlaceBinaryAction

DATA_RENAMED = "vault_kv_read's `data` is renamed `secret`"


class ActionModule(InPlaceBinaryAction):

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        deprecations = result.get('deprecations') or []
        renamed = [d for d in deprecations if isinstance(d, dict) and str(d.get('msg', '')).startswith(DATA_RENAMED)]
        if renamed and isinstance(result.get('data'), dict):
            entry = renamed[0]
            result['data'] = deprecate_value(
                result['data'],
                entry['msg'],
                version=entry.get('version'),
                collection_name=entry.get('collection_name'),
            )
            result['deprecations'] = [d for d in deprecations if d not in renamed]
        return result
