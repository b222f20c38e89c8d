"""Noticing that the broker forgot its messages.

Redis run without persistence (or restored from an old snapshot, or flushed) comes back
empty: every queued message is gone, while the jobs stay `queued` in the database. The
reaper would send them again after JOB_REQUEUE_AFTER; this lets it do so at once. A marker
key lives in the broker's own database: when the reaper finds it missing, whatever was in
that database before is gone too.
"""

import logging

import redis
from django.conf import settings

from core import redis_keys
from core.redis_clients import redis_client

log = logging.getLogger(__name__)

MARKER = redis_keys.BROKER_MARKER


def is_redis(url):
    return url.startswith(("redis://", "rediss://", "unix://"))


def lost_its_messages():
    """True the first time it is asked after the broker came back empty (and on the very
    first run, when nothing can be known: sending a queued job twice is harmless)."""
    url = settings.CELERY_BROKER_URL
    if not is_redis(url):
        return False  # other brokers (RabbitMQ) keep durable queues across restarts
    try:
        return bool(redis_client(url).set(MARKER, "present", nx=True))
    except redis.RedisError as exc:
        log.warning("could not check the broker for lost messages: %s", exc)
        return False
