"""What a job's change sets off, all of it here, called from Job's transitions.

Job._transition calls status_changed() inside the transaction of every status change that
took effect, with the job fresh from the database; Job.advance calls stage_changed().
Writes that must not be lost with the change (the webhook outbox row) happen in that
transaction; the rest run once it commits (waiting.publish_if_finished and metrics defer
themselves with on_commit), so nothing is announced that could still roll back.
"""

from jobs.api import readcache
from jobs.lifecycle import batches, waiting
from jobs.ops import metrics
from jobs.webhooks import outbox


def status_changed(job):
    readcache.forget(job.pk)  # no status read may serve the old status from now on
    outbox.record_event(job)  # the webhook delivery for this event, if the job asked for it
    batches.job_ended(job)  # its batch finished, with its batch.completed delivery, if this was the last
    waiting.publish_if_finished(job)  # wakes `Prefer: wait` requests, on commit
    metrics.job_transitioned(job)  # finished-job counters and timings, on commit


def stage_changed(job):
    readcache.forget(job.pk)  # progress is part of a status read
