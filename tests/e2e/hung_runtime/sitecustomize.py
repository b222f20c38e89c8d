"""Fault injection for tests/e2e/test_watchdog.py, on the PYTHONPATH of one worker only:
LiteRT's run() blocks while the file SEGMENT_TEST_HANG_FILE names exists, as a call into
a hung GPU driver would. Python imports this module at start-up, before Celery."""

import os
import time

_flag = os.environ.get("SEGMENT_TEST_HANG_FILE")
if _flag:
    from workers.runtimes import litert  # numpy only: nothing of Django is set up yet

    _run = litert.Runtime.run

    def _hanging_run(self, batch):
        while os.path.exists(_flag):
            time.sleep(0.1)
        return _run(self, batch)

    litert.Runtime.run = _hanging_run
