# Copyright: Homelab SSO maintainers
# MIT License (see LICENSE)
"""Loads the Jinja filter, test and lookup plugins that playbooks use once, in the controller's
main process, before the first task.

ansible-playbook forks a worker process for every task and host, and a worker loads each filter,
test or lookup plugin its templates name the first time it meets it (about 10 ms for the first
plugin of a file, a few ms each after). The main process itself templates little before it forks,
so every worker loads the same plugins again. Loaded once here, they are inherited by every
worker: a playbook of a few dozen templated tasks spends a few hundred milliseconds less.

Only public ways are used: a template is rendered that asks Jinja whether each filter and test
exists (``is filter``, ``is test``), and each lookup is queried with no terms (it returns nothing
and touches nothing). A name this ansible-core does not have is skipped; nothing here can fail a
run (at -vvv the callback says what it loaded).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: plugin_preload
type: aggregate
short_description: Load the common filter, test and lookup plugins once, before any task
description:
  - Before the first play, renders one template per plugin name that loads the filter, test and
    lookup plugins of ansible.builtin and Jinja that the homelab-sso playbooks use (common to
    most playbooks), in the controller's main process.
  - Every task's worker process inherits them instead of loading each one again; nothing else
    changes. A name that this ansible-core does not know is skipped silently; with C(-vvv) the
    callback says how many plugins it loaded.
  - Enable it with C(callbacks_enabled = homelab.sso.plugin_preload) in C(ansible.cfg) (or
    E(ANSIBLE_CALLBACKS_ENABLED)).
version_added: 1.1.0
requirements:
  - enabled in C(callbacks_enabled)
"""

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.callback import CallbackBase
from ansible.template import Templar

try:
    # ansible-core 2.19 and later render only strings marked as trusted templates.
    from ansible.template import trust_as_template
except ImportError:
    def trust_as_template(text):
        return text

# Every name the project's playbooks use (tests/playbooks.rs checks that the lists hold exactly
# those): Jinja's own and ansible.builtin's, short names as playbooks write them.
FILTERS = (
    'bool', 'combine', 'default', 'dict2items', 'dictsort', 'difference', 'dirname', 'expanduser',
    'extract', 'first', 'flatten', 'int', 'items2dict', 'join', 'length', 'list', 'lower',
    'map', 'product', 'regex_replace', 'reject', 'rejectattr', 'replace', 'round', 'select',
    'selectattr', 'sort', 'split', 'strftime', 'string', 'to_datetime', 'to_json', 'to_nice_json',
    'trim', 'truncate', 'unique', 'zip',
)
TESTS = (
    'contains', 'defined', 'equalto', 'failed', 'file', 'in', 'match', 'none', 'skipped', 'string',
)
LOOKUPS = ('ansible.builtin.env', 'ansible.builtin.file', 'ansible.builtin.password')


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'homelab.sso.plugin_preload'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._preloaded = False

    def v2_playbook_on_start(self, playbook):
        # Once per run, in the main process: every later fork inherits what is loaded here.
        if self._preloaded:
            return
        self._preloaded = True
        loaded = preload(Templar(loader=DataLoader()))
        self._display.vvv(
            'homelab.sso.plugin_preload: %d of %d filter, test and lookup plugins loaded before the first task'
            % (loaded, len(FILTERS) + len(TESTS) + len(LOOKUPS)))


def preload(templar):
    """Renders one template per name, so that each plugin is loaded; returns how many were."""
    templates = ["{{ %r is filter }}" % name for name in FILTERS]
    templates += ["{{ %r is test }}" % name for name in TESTS]
    templates += ["{{ query(%r) == [] }}" % name for name in LOOKUPS]
    loaded = 0
    for template in templates:
        try:
            if templar.template(trust_as_template(template)) in (True, 'True'):
                loaded += 1
        except Exception:  # pylint: disable=broad-except
            # A speed-up only: a name this ansible-core lacks, or any other failure, changes nothing.
            continue
    return loaded
