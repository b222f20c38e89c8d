"""Backpressure: refuse new work, with 429 and Retry-After, before the queue gets out of
hand, rather than accept jobs that would wait for hours.

Counted in the database (the queued rows), which every web process shares; request rates
are DRF's throttling (settings.REST_FRAMEWORK).
"""

from django.conf import settings
from django.db.models import Count, Q
from rest_framework import status

from jobs.api.errors import APIError
from jobs.models import Job

RETRY_AFTER_SECONDS = 30


def check_capacity(user, client_address="", count=1):
    """Raise a 429 when `count` more jobs would be too many waiting, for this user or the
    whole service: a batch fits whole or not at all.

    An anonymous compatible client (`client_address` given) is capped per address instead:
    every such client runs as the one anonymous user, whose cap one of them would fill.
    """
    if client_address:
        mine, cap = Q(owner=user, client_address=client_address), settings.MAX_QUEUED_JOBS_PER_ADDRESS
    else:
        mine, cap = Q(owner=user), settings.MAX_QUEUED_JOBS_PER_USER
    queued = Job.objects.filter(status=Job.Status.QUEUED).aggregate(  # both in one query
        mine=Count("pk", filter=mine), everyone=Count("pk")
    )
    if queued["mine"] + count > cap:
        raise _too_many(
            "too_many_queued_jobs",
            f"You have {queued['mine']} jobs waiting of at most {cap}; submit more as they finish."
            if count == 1
            else f"You have {queued['mine']} jobs waiting of at most {cap}: {count} more do not fit.",
        )
    if queued["everyone"] + count > settings.MAX_QUEUED_JOBS:
        raise _too_many("queue_full", "The service has all the work it can queue; try again shortly.")


def _too_many(code, message):
    return APIError(
        code, message, status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )
