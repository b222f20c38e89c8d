"""Recovery of jobs nobody is working on: run by beat every minute, or `manage.py reap_jobs`.

Two ways a job is orphaned, beyond what a restarted worker recovers by itself
(services.recover_orphans):
1. `running` past its deadline: the hard time limit kills an attempt JOB_TIME_LIMIT + 30 s
   after it starts, so a job still running well past that has lost its worker for good
   (a machine gone, a worker never restarted). It is queued again, or, at JOB_MAX_ATTEMPTS,
   failed with `worker_lost`, so a job that kills every worker it meets ends instead of
   looping.
2. `queued` whose message is gone (Redis lost it, say, in a restart without persistence):
   queued longer than JOB_REQUEUE_AFTER since it was last sent, it is sent again. If the
   first message was only waiting in a long queue, the copy finds the job claimed or done
   and does nothing (Job.claim).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Now

from .models import Job
from .services import BrokerUnavailable, enqueue

log = logging.getLogger(__name__)

# Past the hard time limit, a little more before a running attempt is presumed dead.
DEADLINE_MARGIN = 60


def reap():
    """Requeue or fail orphaned jobs; returns {"requeued": n, "failed": n, "resent": n}."""
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    deadline = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + DEADLINE_MARGIN)
    for job in Job.objects.filter(status=Job.Status.RUNNING, started_at__lt=Now() - deadline):
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            message = f"The job's worker was lost {job.attempts} times; giving up."
            counts["failed"] += job.fail("worker_lost", message, attempt=job.attempts)
        elif job.requeue() and _send(job):
            counts["requeued"] += 1
    stale = Now() - timedelta(seconds=settings.JOB_REQUEUE_AFTER)
    for job in Job.objects.filter(Q(status=Job.Status.QUEUED) & Q(enqueued_at__lt=stale)):
        counts["resent"] += _send(job)
    if any(counts.values()):
        log.warning("reaped orphaned jobs: %s", counts)
    return counts


def _send(job):
    try:
        enqueue(job)
    except BrokerUnavailable:  # enqueue failed the job; it is not left queued
        return False
    return True
