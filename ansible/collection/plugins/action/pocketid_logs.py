# Copyright: Homelab SSO maintainers
# MIT License (see LICENSE)
"""pocketid_logs: runs the installed binary in place under connection local (see plugin_utils/in_place.py)."""

from __future__ import annotations

from ansible_collections.homelab.sso.plugins.plugin_utils.in_place import InPlaceBinaryAction


class ActionModule(InPlaceBinaryAction):
    pass
