# Copyright: Homelab SSO maintainers
# MIT License (see LICENSE)
"""vault_full_write: runs the installed binary in place under connection local (see plugin_utils/in_place.py)."""

from __future__ import annotations

from ansible_collections.homelab.sso.plugins.plugin_utils.in_place import InPlaceBinaryAction


class ActionModule(InPlaceBinaryAction):
    pass
