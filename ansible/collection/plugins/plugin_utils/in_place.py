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

The parsing is ansible-core's own, and its shape differs between releases: the in-place path is
taken only where the parts it needs are found (by feature, never by version number), and otherwise
the task takes Ansible's usual way. Once the binary has run, its effect is never lost: if reading
its result fails for any reason, the task fails with the module's own result kept.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import tempfile

from collections.abc import Sequence

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.release import __version__ as ANSIBLE_CORE_VERSION
from ansible.utils.vars import merge_hash

try:
    # Results are plain dicts, cleaned by this function (until ansible-core 2.20).
    from ansible.vars.clean import remove_internal_keys
except ImportError:
    remove_internal_keys = None

try:
    # The args file is written with the encoder the usual way uses (ansible-core 2.19 and later).
    from ansible.module_utils.common.json import Direction, get_module_encoder
except ImportError:
    Direction = get_module_encoder = None

try:
    # With data tagging (ansible-core 2.19 and later) a module's result is never trusted as a template.
    import ansible.module_utils.datatag  # noqa: F401  pylint: disable=unused-import
    wrap_var = None
except ImportError:
    # Before it, the usual way marks the whole result unsafe; so does the in-place path.
    from ansible.utils.unsafe_proxy import wrap_var

LOCAL_CONNECTIONS = frozenset(('local', 'ansible.builtin.local', 'ansible.legacy.local'))

# The serialization profile ansible-core gives binary modules.
PROFILE = 'legacy'

# How ``_parse_returned_data`` answers, found once per process by parsing an empty module result.
DICT_RESULTS = 'dict'
UNIFIED_RESULTS = 'unified'
_PROBE = {'rc': 0, 'stdout': '{}', 'stdout_lines': ['{}'], 'stderr': '', 'stderr_lines': []}
_FOUND = {}


def _unsafe(data):
    return wrap_var(data) if wrap_var is not None else data


def _module_result(stdout):
    """The JSON object a module printed (it prints exactly one), or None."""
    text = stdout.strip()
    start, end = text.find('{'), text.rfind('}')
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(text[start:end + 1])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def kept_result(stdout, error):
    """A failed task result that keeps what the module returned after reading it failed with ``error``.

    Only the exception's type is named: its text may quote the result, which can hold secrets.
    """
    module = _module_result(stdout)
    kept = {}
    if module is None:
        kept['module_stdout'] = stdout
    else:
        for key, value in module.items():
            if not isinstance(key, str) or key.startswith('_ansible_') or key in ('deprecations', 'exception'):
                continue
            if key == 'warnings' and not (isinstance(value, list) and all(isinstance(w, str) for w in value)):
                continue
            kept[key] = value
    kept['failed'] = True
    kept['msg'] = (
        'The module ran, but reading its result failed on ansible-core %s (%s). What the module '
        'returned is kept in this result: check its `changed` and values before running the task '
        'again. Please report this to the homelab.sso maintainers.' % (ANSIBLE_CORE_VERSION, type(error).__name__)
    )
    return _unsafe(kept)


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
        protocol = self._results_protocol() if module_path is not None else None
        if protocol is None:
            return merge_hash(result, self._run_as_usual(task_vars))
        return merge_hash(result, self._run_in_place(module_path, protocol, task_vars))

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

    def _parse(self, res):
        """ansible-core's own parsing of a module's output (one argument until 2.18, two since)."""
        if _FOUND.get('arity') == 1:
            return self._parse_returned_data(res)
        return self._parse_returned_data(res, PROFILE)

    def _results_protocol(self):
        """DICT_RESULTS or UNIFIED_RESULTS when this ansible-core's parsing is understood, else None.

        Found before any binary runs, by parsing an empty result: nothing has happened yet when
        the answer is "take the usual way".
        """
        if 'protocol' in _FOUND:
            return _FOUND['protocol']
        protocol = None
        try:
            arity = len(inspect.signature(self._parse_returned_data).parameters)
        except (TypeError, ValueError):
            arity = None
        if arity in (1, 2):
            _FOUND['arity'] = arity
            try:
                probe = self._parse(dict(_PROBE))
            except Exception:  # pylint: disable=broad-except
                probe = None
            if isinstance(probe, dict):
                if remove_internal_keys is not None and probe.get('_ansible_parsed') is True:
                    protocol = DICT_RESULTS
            elif all(callable(getattr(probe, m, None)) for m in ('remove_internal_keys', 'as_result_dict')):
                protocol = UNIFIED_RESULTS
        _FOUND['protocol'] = protocol
        self._display.vvvv('homelab.sso: binaries run %s on ansible-core %s' % (
            'in place under connection local' if protocol else 'the usual way', ANSIBLE_CORE_VERSION))
        return protocol

    def _run_as_usual(self, task_vars):
        wrap_async = self._task.async_val and not getattr(self._connection, 'has_native_async', False)
        data = self._execute_module(task_vars=task_vars, wrap_async=wrap_async)
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return data

    def _run_in_place(self, module_path, protocol, task_vars):
        module_name = self._task.action
        module_args = dict(self._task.args)
        self._update_module_args(module_name, module_args, task_vars)
        environment = {}
        self._compute_environment_string(raw_environment_out=environment)
        env = dict(os.environ)
        env.update((str(k), to_text(v)) for k, v in environment.items())
        encoder = get_module_encoder(PROFILE, Direction.CONTROLLER_TO_MODULE) if get_module_encoder else None

        # The args file holds secrets: mkstemp makes it 0600, and it is removed whatever happens.
        fd, args_path = tempfile.mkstemp(prefix='args-', dir=C.DEFAULT_LOCAL_TMP)
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(module_args, f, cls=encoder)
            proc = subprocess.run([module_path, args_path], stdin=subprocess.DEVNULL,
                                  capture_output=True, env=env, check=False)
        finally:
            os.unlink(args_path)

        stdout = to_text(proc.stdout, errors='surrogate_then_replace')
        # From here on the module has done its work: whatever fails, its result is delivered.
        try:
            return self._read_result(proc.returncode, stdout, to_text(proc.stderr, errors='surrogate_then_replace'), protocol)
        except Exception as error:  # pylint: disable=broad-except
            return kept_result(stdout, error)

    def _read_result(self, rc, stdout, stderr, protocol):
        """What ``_execute_module`` makes of a module's output, on this ansible-core."""
        self._used_interpreter = None
        res = {'rc': rc, 'stdout': stdout, 'stdout_lines': stdout.splitlines(),
               'stderr': stderr, 'stderr_lines': stderr.splitlines()}
        parsed = self._parse(res)
        if protocol == UNIFIED_RESULTS:
            parsed.remove_internal_keys()
            return parsed.as_result_dict(for_round_trip=True)
        data = parsed
        data.pop('_ansible_suppress_tmpdir_delete', None)
        results = data.get('results')
        if results is not None and (not isinstance(results, Sequence) or isinstance(results, str)):
            data['ansible_module_results'] = data.pop('results')
            self._display.warning("Found internal 'results' key in module return, renamed to 'ansible_module_results'.")
        remove_internal_keys(data)
        for stream in ('stdout', 'stderr'):
            if stream in data and f'{stream}_lines' not in data:
                data[f'{stream}_lines'] = (data.get(stream) or '').splitlines()
        return _unsafe(data)
