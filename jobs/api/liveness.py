"""Which live workers consume which queues, asked of the workers over the broker.

A broadcast with a short timeout, cached briefly: GET /api/v1/models/ must stay fast and
must not turn into a broadcast storm when clients poll it.
"""

import logging

from celery import current_app
from django.core.cache import cache

log = logging.getLogger(__name__)

CACHE_KEY = "segment:live-queues"
CACHE_SECONDS = 5
REPLY_TIMEOUT = 1.0


def live_queues():
    """{queue name: sorted worker names} for every worker that answered."""
    cached = cache.get(CACHE_KEY)
    if cached is not None:
        return cached
    try:
        replies = current_app.control.inspect(timeout=REPLY_TIMEOUT).active_queues() or {}
    except Exception as exc:  # broker down: report no live workers rather than fail the request
        log.warning("could not ask workers for their queues: %s", exc)
        replies = {}
    queues = {}
    for worker, consumed in replies.items():
        for queue in consumed:
            queues.setdefault(queue["name"], []).append(worker)
    queues = {name: sorted(workers) for name, workers in queues.items()}
    cache.set(CACHE_KEY, queues, CACHE_SECONDS)
    return queues
