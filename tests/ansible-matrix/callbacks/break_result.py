# Test-only (tests/ansible_matrix.rs enables it for kept-result.yml; never shipped): makes reading
# every in-place module result fail after the binary ran, as a change in ansible-core or a plugin
# bug would.
from __future__ import annotations

from ansible.plugins.callback import CallbackBase

from ansible_collections.homelab.sso.plugins.plugin_utils import in_place

DOCUMENTATION = """
name: break_result
type: aggregate
short_description: breaks the reading of homelab.sso's in-place results (tests only)
description: [Replaces InPlaceBinaryAction._read_result with one that raises.]
"""


def _broken(self, rc, stdout, stderr, protocol):
    raise RuntimeError('result reading broken on purpose')


in_place.InPlaceBinaryAction._read_result = _broken


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'break_result'
