"""A batching worker's watchdog: a runtime call that never returns restarts the worker.

In a prefork worker Celery's hard time limit kills a pool process stuck in a call. A
batching worker's calls run on a Batcher's thread, which nothing can stop: its photos'
jobs time out (InferenceTimedOut), and so would every later job of that model, while the
worker went on announcing it. So once a Batcher has been in one call longer than
JOB_TIME_LIMIT, the watchdog withdraws the announcement and stops the worker warm: its
other jobs finish, and its container's restart policy (docker-compose.yml) brings it back
with a fresh runtime; jobs left running under its name are requeued when it starts.
"""

import logging
import threading
import time

log = logging.getLogger(__name__)

CHECK_SECONDS = 5


def watch(batchers, stop, interval=CHECK_SECONDS):
    """Call stop() once, from a daemon thread, when any of `batchers` is stuck()."""

    def loop():
        while True:
            time.sleep(interval)
            stuck = [batcher.name for batcher in batchers if batcher.stuck()]
            if stuck:
                log.critical(
                    "model %s: a runtime call has not returned within the job time limit; "
                    "stopping this worker so that it restarts",
                    ", ".join(stuck),
                )
                stop()
                return

    thread = threading.Thread(target=loop, name="watchdog", daemon=True)
    thread.start()
    return thread
