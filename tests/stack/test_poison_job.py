"""A job that kills its worker process every time it runs ends `failed` with `worker_lost`
after JOB_MAX_ATTEMPTS, instead of being requeued for ever; other jobs keep flowing."""

import collections
import os
import signal
import threading
import time

import pytest

pytestmark = pytest.mark.faults

MAX_ATTEMPTS = 3
OTHERS = 10


class PoisonEffect(threading.Thread):
    """Whenever the poison job runs, its pool process dies (SIGKILL: as a segfault or the
    kernel's OOM killer would end it). The worker's main process lives on and forks a new
    pool process; Celery hands the message back to the broker."""

    def __init__(self, stack, worker, job_id, timeout=300):
        super().__init__(daemon=True)
        self.stack, self.worker, self.job_id = stack, worker, job_id
        self.kills = []
        self.done = threading.Event()
        # Where the test fails before setting `done`, the thread still ends: it must not go
        # on killing pool processes under whatever runs next.
        self.deadline = time.monotonic() + timeout

    def run(self):
        while not self.done.is_set() and time.monotonic() < self.deadline:
            status, attempts, _, _ = self.stack.job_row(self.job_id)
            if status == "running" and attempts not in self.kills:
                for child in self.worker.children():
                    os.kill(child, signal.SIGKILL)
                self.kills.append(attempts)
            time.sleep(0.01)


def test_a_job_that_kills_its_worker_every_time_ends_failed_and_others_flow(stack, photo, figure):
    stack.env["JOB_MAX_ATTEMPTS"] = str(MAX_ATTEMPTS)
    stack.start_web()
    worker = stack.start_worker("worker")
    main_pid = worker.pid
    client = stack.client(stack.tokens["alice"])

    before = [client.submit_until_accepted(photo)[0] for _ in range(OTHERS // 2)]
    poison = client.submit_until_accepted(photo)[0]
    effect = PoisonEffect(stack, worker, poison)
    effect.start()
    after = [client.submit_until_accepted(photo)[0] for _ in range(OTHERS - OTHERS // 2)]

    started = time.monotonic()
    try:
        jobs = client.wait_all([poison, *before, *after], timeout=240)
    finally:
        effect.done.set()
    ended = jobs.pop(poison)
    assert (ended["status"], ended["error"]["code"], ended["attempts"]) == ("failed", "worker_lost", 3), ended
    assert effect.kills == [1, 2, 3]
    statuses = collections.Counter(job["status"] for job in jobs.values())
    assert statuses == {"succeeded": OTHERS}, statuses
    assert worker.alive() and worker.pid == main_pid
    figure(
        f"poison job: its pool process killed at attempts {effect.kills}, then failed worker_lost "
        f"(JOB_MAX_ATTEMPTS={MAX_ATTEMPTS}), not requeued again; the other {OTHERS} jobs all "
        f"succeeded; all ended in {time.monotonic() - started:.0f} s"
    )
