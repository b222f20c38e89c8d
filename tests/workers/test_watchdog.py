"""workers/watchdog.py: a batching worker stops itself once a runtime call is stuck."""

import threading
import time

from workers.watchdog import watch


class FakeBatcher:
    def __init__(self, name):
        self.name, self.is_stuck = name, False

    def stuck(self):
        return self.is_stuck


def test_the_worker_is_stopped_once_when_a_batcher_is_stuck_and_not_before(caplog):
    healthy, hung = FakeBatcher("a"), FakeBatcher("b")
    stops = []
    stopped = threading.Event()
    thread = watch([healthy, hung], stop=lambda: stops.append(1) or stopped.set(), interval=0.02)
    time.sleep(0.2)
    assert stops == []  # nobody stuck: the worker runs on
    hung.is_stuck = True
    assert stopped.wait(10)
    thread.join(timeout=10)
    assert stops == [1] and not thread.is_alive()
    assert "model b: a runtime call has not returned" in caplog.text
