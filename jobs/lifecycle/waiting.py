"""Waiting for a job to finish without polling: workers publish, waiters subscribe.

A worker that finishes a job publishes its status on a Redis channel named after it once
the change is committed. A `Prefer: wait` request subscribes, checks the row once and
blocks on the subscription: no polling, and no database connection held past the first
second. It does hold a web thread, so each web process lets at most MAX_WAITING_REQUESTS
wait at once; past that a request is answered at once (202), which keeps threads free for
status reads.
"""

import functools
import logging
import threading
import time
from contextlib import contextmanager

import redis
from django.conf import settings
from django.db import connection, transaction

from core import redis_keys
from core.redis_clients import redis_client
from jobs.models import Job

log = logging.getLogger(__name__)

# A light job ends within this: its waiter keeps its database connection for the answer
# (reconnecting costs several ms); a longer wait gives the connection back.
HOLD_CONNECTION_SECONDS = 1.0


@functools.cache
def _slots():
    return threading.BoundedSemaphore(settings.MAX_WAITING_REQUESTS)


channel = redis_keys.job_finished


def publish_if_finished(job):
    """Within a status change's transaction: announce a finished job after the commit."""
    if job.status in Job.TERMINAL:
        job_id, status = job.id, job.status
        transaction.on_commit(lambda: _publish(job_id, status), robust=True)


def _publish(job_id, status):
    try:
        redis_client(settings.REDIS_URL).publish(channel(job_id), status)
    except redis.RedisError as exc:  # waiters then answer 202 when their time is up
        log.warning("could not announce that job %s finished: %s", job_id, exc)


@contextmanager
def waiting_slot(timeout=0):
    """Yields whether this request may wait: False when this process already has
    MAX_WAITING_REQUESTS requests waiting and none ends within `timeout` seconds."""
    acquired = _slots().acquire(timeout=timeout) if timeout else _slots().acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            _slots().release()


def _announced(pubsub, seconds):
    """Whether the subscribed channel announced the job within `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if pubsub.get_message(timeout=left) is not None:
            return True
    return False


def wait_until_finished(job_id, seconds):
    """Return once the job has finished or `seconds` have passed, whichever is first."""
    pubsub = redis_client(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    try:
        # Subscribe before looking, so a job finishing in between is not missed.
        pubsub.subscribe(channel(job_id))
        finished = Job.objects.filter(pk=job_id, status__in=Job.TERMINAL).exists()
        held = min(seconds, HOLD_CONNECTION_SECONDS)
        finished = finished or _announced(pubsub, held)
        if not finished:
            if not connection.in_atomic_block:
                connection.close()  # reopened on the next query; nobody holds it meanwhile
            finished = _announced(pubsub, seconds - held)
    except redis.RedisError as exc:
        log.warning("could not wait for job %s: %s", job_id, exc)
    finally:
        pubsub.close()
