"""Celery on RabbitMQ, the production broker, with Redis kept for the cache, waiting and
heartbeats (REDIS_URL): the job flow, a worker SIGKILLed mid-job, and the reaper.

Each test gets a virtual host of its own on the machine's RabbitMQ (127.0.0.1:5672), made
and deleted with rabbitmqctl, so no other run's queues are touched.
"""

import time

import pytest

from tests.stack.test_worker_kills import kill_mid_job

pytestmark = pytest.mark.faults

JOBS = 30


def test_jobs_on_rabbitmq_survive_a_worker_sigkill_mid_job(rabbit_stack, photo, figure):
    stack = rabbit_stack
    stack.start_web()
    stack.start_io()
    stack.start_beat()
    worker = stack.start_worker("worker")
    client = stack.client(stack.tokens["alice"])

    job_ids = [client.submit_until_accepted(photo)[0] for _ in range(JOBS)]
    client.wait_succeeded(job_ids, JOBS // 3, timeout=180, interval=0.3)
    # Restarted, the worker gets the unacknowledged message again from RabbitMQ.
    interrupted, _ = kill_mid_job(stack, worker, client, tries=6)

    deadline = time.monotonic() + 180
    while client.statuses(job_ids)["succeeded"] < JOBS and time.monotonic() < deadline:
        time.sleep(0.5)
    statuses = client.statuses(job_ids)
    twice = [job for job, count in stack.successes().items() if count > 1]
    figure(
        f"RabbitMQ broker: {JOBS} jobs, the worker SIGKILLed mid-job once: {statuses['succeeded']} succeeded, "
        f"{len(twice)} recorded twice; the interrupted job took {stack.job_row(interrupted)[1]} attempts"
    )
    assert statuses["succeeded"] == JOBS and twice == []
    assert stack.job_row(interrupted)[1] == 2
