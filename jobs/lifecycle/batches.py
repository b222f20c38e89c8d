"""Batches: images submitted together as ordinary jobs, followed by one id, announced by
one `batch.completed` webhook once every job has ended.

1. create_batch stores every input, commits the batch and all its jobs in one transaction,
   then queues each job. A broker failure deletes the whole batch: the client is told 503
   and submits again, and nothing of this attempt may remain to answer that retry.
2. Each job's terminal transition calls job_ended (jobs/lifecycle/effects.py) in its own
   transaction. It locks the batch row, so the last two jobs ending at once on two workers
   are taken one after the other: the second sees the first's commit and finishes the
   batch. Without the lock each would still see the other running and neither would.
3. finished_at is set by a conditional UPDATE, once; the webhook outbox row is written in
   that same transaction, so `batch.completed` is recorded exactly once and never lost.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.lifecycle.services import BrokerUnavailable, enqueue, new_job
from jobs.lifecycle.storage import delete_job_files
from jobs.models import Batch, Job
from jobs.ops import metrics
from jobs.webhooks import outbox


class DuplicateBatch(Exception):
    """A retried batch submit: the batch its Idempotency-Key already created."""

    def __init__(self, batch):
        super().__init__(f"batch {batch.id} was already created with this idempotency key")
        self.batch = batch


def create_batch(
    owner,
    spec,
    options,
    images=(),
    image_urls=(),
    webhook_url="",
    job_events=(),
    batch_events=(),
    idempotency_key="",
    **job_fields,
):
    """Store the inputs, commit the batch with its jobs, then queue every job.

    `images`: (upload, info) pairs, checked by the caller (uploads.inspect_upload); or
    `image_urls`, fetched by the workers. Each job gets the webhook URL only when it asks
    for per-job events (`job_events`); the batch keeps it for `batch_events`. Raises
    BrokerUnavailable (nothing kept) and DuplicateBatch for a raced Idempotency-Key.
    """
    batch = Batch(
        owner=owner,
        idempotency_key=idempotency_key,
        webhook_url=webhook_url if batch_events else "",
        webhook_events=list(batch_events),
    )
    inputs = [(upload, info, "") for upload, info in images] + [(None, None, url) for url in image_urls]
    jobs = [
        new_job(
            owner,
            upload,
            info,
            spec,
            options,
            image_url=url,
            batch=batch,
            batch_index=index,
            webhook_url=webhook_url if job_events else "",
            webhook_events=job_events,
            **job_fields,
        )
        for index, (upload, info, url) in enumerate(inputs)
    ]
    try:
        with transaction.atomic():
            batch.save(force_insert=True)
            Job.objects.bulk_create(jobs)
    except IntegrityError:
        # Two retries raced past the caller's look-up: the first batch won; drop our files.
        for job in jobs:
            delete_job_files(job.id)
        earlier = batch_with_key(owner, idempotency_key)
        if earlier is None:
            raise
        raise DuplicateBatch(earlier) from None
    try:
        for job in jobs:
            enqueue(job)
    except BrokerUnavailable:
        # Its jobs and their files go with it; a message already sent finds no row.
        batch.delete()
        raise
    for job in jobs:
        metrics.job_created(job)
    return batch


def batch_with_key(owner, idempotency_key):
    """The owner's batch created with this Idempotency-Key, if any."""
    if not idempotency_key:
        return None
    return Batch.objects.filter(owner=owner, idempotency_key=idempotency_key).first()


def delete_batch(batch):
    """Delete a batch, its jobs and their files.

    Its unfinished jobs are canceled first, each by its own transition: then no worker can
    end one while the batch goes (a `batch.completed` written at that moment would point at
    a batch being deleted), and a running attempt finds its job canceled and discards what
    it made.
    """
    for job in batch.jobs.filter(status__in=Job.ACTIVE):
        job.cancel()
    batch.delete()


def job_ended(job):
    """Within a job's status change: finish its batch if this was its last job to end."""
    if job.batch_id is None or job.status not in Job.TERMINAL:
        return
    # The batch's row lock, held until this transition commits, orders its jobs' endings.
    batch = Batch.objects.select_for_update().filter(pk=job.batch_id).first()
    if batch is None or batch.jobs.filter(status__in=Job.ACTIVE).exists():
        return
    finished_at = timezone.now()
    # Once: a batch already finished stays as it was, and gets no second webhook.
    if not Batch.objects.filter(pk=batch.pk, finished_at__isnull=True).update(finished_at=finished_at):
        return
    batch.finished_at = finished_at
    outbox.record_batch_event(batch)


def status_counts(jobs):
    """{status: how many of these jobs have it}, every status named."""
    counts = dict.fromkeys(Job.Status.values, 0)
    for job in jobs:
        counts[job.status] += 1
    return counts
