# Copyright: Homelab SSO maintainers
# MIT License (see LICENSE)
"""phase_times: for `make bench` (f) only, never shipped. Records when each play and task starts
and ends (monotonic seconds since the epoch clock's reading at load), names only, into the JSON
file named by BENCH_PHASE_TIMES. Task results are never read beyond their status."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: phase_times
type: aggregate
short_description: play and task times for the rotation benchmark
description: Writes the start and end of every play and task (names only) to BENCH_PHASE_TIMES.
requirements: [enable in callbacks_enabled]
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'phase_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ.get('BENCH_PHASE_TIMES')
        # Wall-clock seconds, so that the bench can set them beside its own start of the process.
        self._loaded = time.time()
        self._plays = []
        self._tasks = []
        self._task = None

    def _end_task(self):
        if self._task is not None:
            self._task['end'] = time.time()
            self._tasks.append(self._task)
            self._task = None

    def v2_playbook_on_play_start(self, play):
        self._end_task()
        self._plays.append({'name': play.get_name(), 'start': time.time()})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._end_task()
        self._task = {'name': task.get_name(), 'play': len(self._plays) - 1, 'start': time.time(),
                      'status': 'started'}

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _status(self, status):
        if self._task is not None:
            self._task['status'] = status

    def v2_runner_on_ok(self, result):
        self._status('ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._status('failed')

    def v2_runner_on_skipped(self, result):
        self._status('skipped')

    def v2_playbook_on_stats(self, stats):
        self._end_task()
        if self._path:
            with open(self._path, 'w', encoding='utf-8') as f:
                json.dump({'loaded': self._loaded, 'end': time.time(), 'plays': self._plays,
                           'tasks': self._tasks}, f)
