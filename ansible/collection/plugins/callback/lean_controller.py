# Copyright: Homelab SSO maintainers
# MIT License (see LICENSE)
"""Spares ansible-playbook's controller process two costs that every run pays for nothing.

Plugins loaded again in every worker: ansible-playbook forks a worker process for every task and
host, and a worker loads each filter, test or lookup plugin its templates name the first time it
meets it (about 10 ms for the first plugin of a file, a few ms each after). The main process itself
templates little before it forks, so every worker loads the same plugins again. Loaded once at the
start, in the main process, they are inherited by every worker. Only public ways are used: a
template is rendered that asks Jinja whether each filter and test exists (``is filter``, ``is
test``), and each lookup is queried with no terms (it returns nothing and touches nothing).

A garbage collection of the whole heap at exit: the interpreter's shutdown collects every object
the run made (about 0.1 s for a playbook of a few dozen tasks), although the process is about to
end. Once the run's statistics are out, the objects are frozen (``gc.freeze``, Python's own way to
exempt them from collection); atexit handlers, such as the removal of Ansible's local temporary
directory, and the exit code are unchanged.

A name this ansible-core does not have is skipped; nothing here can fail a run (at -vvv the
callback says what it did).
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: lean_controller
type: aggregate
short_description: Load the common plugins once before any task, skip the garbage collection at exit
description:
  - Before the first play, renders one template per plugin name that loads the filter, test and
    lookup plugins of ansible.builtin and Jinja that the homelab-sso playbooks use (common to
    most playbooks), in the controller's main process. Every task's worker process inherits them
    instead of loading each one again. A name that this ansible-core does not know is skipped.
  - After the run's statistics, freezes the process's objects (Python's C(gc.freeze)), so that the
    interpreter's shutdown does not collect the whole heap just before the process ends. atexit
    handlers and the exit code are unchanged.
  - Nothing else changes, and nothing here can fail a run; with C(-vvv) the callback says what it did.
  - Enable it with C(callbacks_enabled = homelab.sso.lean_controller) in C(ansible.cfg) (or
    E(ANSIBLE_CALLBACKS_ENABLED)).
version_added: 1.1.0
requirements:
  - enabled in C(callbacks_enabled)
"""

import gc

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
    CALLBACK_NAME = 'homelab.sso.lean_controller'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._preloaded = False

    def v2_playbook_on_start(self, playbook):
        # Once per run, in the main process: every later fork inherits what is loaded here.
        if self._preloaded:
            return
        self._preloaded = True
        try:
            loaded = preload(Templar(loader=DataLoader()))
        except Exception as e:  # pylint: disable=broad-except
            self._display.vvv('homelab.sso.lean_controller: no plugins loaded before the first task (%s)' % e)
            return
        self._display.vvv(
            'homelab.sso.lean_controller: %d of %d filter, test and lookup plugins loaded before the first task'
            % (loaded, len(FILTERS) + len(TESTS) + len(LOOKUPS)))

    def v2_playbook_on_stats(self, stats):
        # The last event of a run: what is left is cleanup and exit, which need no collection.
        gc.freeze()
        self._display.vvv('homelab.sso.lean_controller: %d objects frozen, no garbage collection at exit'
                          % gc.get_freeze_count())


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
