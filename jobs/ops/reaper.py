"""Recovery of jobs nobody is working on: run by beat every minute, or `manage.py reap_jobs`.

Two ways a job is orphaned, beyond what a restarted worker recovers by itself
(services.recover_orphans):
1. `running` past its deadline: the hard time limit kills an attempt JOB_TIME_LIMIT + 30 s
   after it starts (a batching worker's threads are not killed, but each inference call is
   given up on after JOB_TIME_LIMIT, and a call stuck past that stops the worker,
   workers/watchdog.py; a tiled model's several calls can outlast the deadline, README
   "Workers"), so a job still running well past that has lost its worker for good
   (a machine gone, a worker never restarted). It is queued again, or, at JOB_MAX_ATTEMPTS,
   failed with `worker_lost`, so a job that kills every worker it meets ends instead of
   looping.
2. `queued` whose message is gone: queued longer than JOB_REQUEUE_AFTER since it was last
   sent, or never sent UNSENT_GRACE after it was stored or requeued (its sender died, or
   the broker was down), it is sent again. When the broker
   is known to have come back empty (jobs/broker.py), every queued job is sent again at
   once. If the first message was only waiting in a long queue, the copy finds the job
   claimed or done and does nothing (Job.claim).

While the broker is down nothing is failed: jobs stay queued and the next pass sends them.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Now

from jobs.lifecycle.services import BrokerUnavailable, enqueue
from jobs.models import Job
from jobs.ops.broker import lost_its_messages

log = logging.getLogger(__name__)

# Past the hard time limit, a little more before a running attempt is presumed dead.
DEADLINE_MARGIN = 60
# A new job is sent within milliseconds of being stored; one still unsent after this long
# lost its sender (a web process that died). A requeued job (older than this) is sent at
# the next pass if its own send failed.
UNSENT_GRACE = 60


def reap():
    """Requeue or fail orphaned jobs; returns {"requeued": n, "failed": n, "resent": n}."""
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    try:
        _reap(counts)
    except BrokerUnavailable:
        log.warning("the broker is unavailable; orphaned jobs stay queued until the next pass")
    if any(counts.values()):
        log.warning("reaped orphaned jobs: %s", counts)
    return counts


def _reap(counts):
    deadline = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + DEADLINE_MARGIN)
    for job in Job.objects.filter(status=Job.Status.RUNNING, started_at__lt=Now() - deadline):
        if job.attempts >= settings.JOB_MAX_ATTEMPTS:
            message = f"The job's worker was lost {job.attempts} times; giving up."
            counts["failed"] += job.fail("worker_lost", message, attempt=job.attempts)
        elif job.requeue():
            enqueue(job)  # if this fails, the job is queued and stale: sent on a later pass
            counts["requeued"] += 1
    queued = Job.objects.filter(status=Job.Status.QUEUED)
    if not lost_its_messages():
        stale = Now() - timedelta(seconds=settings.JOB_REQUEUE_AFTER)
        unsent = Q(enqueued_at__isnull=True, created_at__lt=Now() - timedelta(seconds=UNSENT_GRACE))
        queued = queued.filter(Q(enqueued_at__lt=stale) | unsent)
    for job in queued.order_by("created_at"):
        enqueue(job)
        counts["resent"] += 1
