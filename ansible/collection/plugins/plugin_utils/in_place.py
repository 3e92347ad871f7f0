# Copyright: Homelab SSO maintainers
# MIT License (see LICENSE)
"""Runs a binary module of this collection in place when the target is the controller.

For a binary module Ansible makes a temporary directory, copies the whole executable (about 2 MB)
and the args file into it, runs chmod, runs the module through /bin/sh and removes the directory:
four shell processes and a copy per task. With ``connection: local`` the installed binary is
already on the target, so it is run where it is, with an args file (mode 0600) in Ansible's own
local temporary directory. The module sees the same args file (the same ``_ansible_*`` keys,
``_ansible_tmpdir`` null as under an unprivileged become) and its result goes through the same
parsing, so check mode, diff, no_log, warnings, deprecations and failures behave as before.
Everything else (another connection, become, async, keep_remote_files) takes Ansible's usual way.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile

from collections.abc import Sequence

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash
from ansible.vars.clean import remove_internal_keys

LOCAL_CONNECTIONS = frozenset(('local', 'ansible.builtin.local', 'ansible.legacy.local'))


class InPlaceBinaryAction(ActionBase):
    """The ``normal`` action, except that a local binary module runs from where it is installed."""

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # no longer has any effect, as in the normal action
        if task_vars is None:
            task_vars = {}
        module_path = self._in_place_path()
        if module_path is None:
            return merge_hash(result, self._run_as_usual(task_vars))
        return merge_hash(result, self._run_in_place(module_path, task_vars))

    def _in_place_path(self):
        """The installed binary's path when it can run in place, else None."""
        if (
            self._connection.transport not in LOCAL_CONNECTIONS
            or self._play_context.become
            or self._task.async_val
            or C.DEFAULT_KEEP_REMOTE_FILES
        ):
            return None
        found = self._shared_loader_obj.module_loader.find_plugin_with_context(
            self._task.action, '', collection_list=self._task.collections)
        path = found.plugin_resolved_path if found.resolved else None
        if not path or not os.access(path, os.X_OK):
            # A copy without the execute bit still works the usual way (Ansible chmods its copy).
            return None
        return path

    def _run_as_usual(self, task_vars):
        wrap_async = self._task.async_val and not self._connection.has_native_async
        data = self._execute_module(task_vars=task_vars, wrap_async=wrap_async)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return data

    def _run_in_place(self, module_path, task_vars):
        module_name = self._task.action
        module_args = dict(self._task.args)
        self._update_module_args(module_name, module_args, task_vars)
        environment = {}
        self._compute_environment_string(raw_environment_out=environment)
        env = dict(os.environ)
        env.update((str(k), to_text(v)) for k, v in environment.items())

        # The args file holds secrets: mkstemp makes it 0600, and it is removed whatever happens.
        fd, args_path = tempfile.mkstemp(prefix='args-', dir=C.DEFAULT_LOCAL_TMP)
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(module_args, f)
            proc = subprocess.run([module_path, args_path], stdin=subprocess.DEVNULL,
                                  capture_output=True, env=env, check=False)
        finally:
            os.unlink(args_path)

        self._used_interpreter = None
        res = {
            'rc': proc.returncode,
            'stdout': to_text(proc.stdout, errors='surrogate_then_replace'),
            'stderr': to_text(proc.stderr, errors='surrogate_then_replace'),
        }
        data = self._parse_returned_data(res, 'legacy')
        # What _execute_module does to a module's result after parsing it.
        data.pop('_ansible_suppress_tmpdir_delete', None)
        results = data.get('results')
        if results is not None and (not isinstance(results, Sequence) or isinstance(results, str)):
            data['ansible_module_results'] = data.pop('results')
            self._display.warning("Found internal 'results' key in module return, renamed to 'ansible_module_results'.")
        remove_internal_keys(data)
        for stream in ('stdout', 'stderr'):
            if stream in data and f'{stream}_lines' not in data:
                data[f'{stream}_lines'] = (data.get(stream) or '').splitlines()
        return data
