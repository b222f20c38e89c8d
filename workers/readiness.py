"""Workers tell the web process which models they have ready, through Redis.

A pool process announces itself once its models are loaded and warmed up with one
inference, then renews the announcement every RENEW_SECONDS from a daemon thread. Each
announcement expires after TTL_SECONDS, so a process that dies (however it dies) drops
out of /readyz within that time, without anyone having to clean up after it.
"""

import json
import logging
import os
import threading
import time

import redis
from django.conf import settings

from core.redis_clients import redis_client

log = logging.getLogger(__name__)

PREFIX = "segment:ready:"
TTL_SECONDS = 15
RENEW_SECONDS = 5


def _redis():
    return redis_client(settings.REDIS_URL)


def announce(worker, models):
    """Start announcing this process (of node `worker`) as ready with `models`."""

    def renew():
        while True:
            try:
                publish(worker, models)
            except redis.RedisError as exc:  # the broker's Redis is down: nothing to run anyway
                log.warning("could not announce readiness: %s", exc)
            time.sleep(RENEW_SECONDS)

    threading.Thread(target=renew, name="readiness", daemon=True).start()


def publish(worker, models, pid=None):
    """One announcement, valid for TTL_SECONDS; returns its key."""
    pid = pid or os.getpid()
    key = f"{PREFIX}{worker}:{pid}"
    _redis().set(key, json.dumps({"worker": worker, "pid": pid, "models": list(models)}), ex=TTL_SECONDS)
    return key


def ready_workers():
    """{model name: sorted worker names} of every live, announced pool process."""
    client = _redis()
    keys = list(client.scan_iter(match=f"{PREFIX}*", count=500))
    served = {}
    for raw in client.mget(keys) if keys else []:
        if raw is None:  # expired between the scan and the read
            continue
        announcement = json.loads(raw)
        for model in announcement["models"]:
            served.setdefault(model, set()).add(announcement["worker"])
    return {model: sorted(workers) for model, workers in served.items()}
