"""Job lifecycle operations used by the API, the admin and the workers."""

import logging
from pathlib import Path
from urllib.parse import urlsplit

from celery import current_app
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from kombu.exceptions import OperationalError

from jobs.lifecycle.storage import delete_job_files, job_file_path
from jobs.models import Job
from jobs.ops import metrics

log = logging.getLogger(__name__)

SEGMENT_TASK = "workers.tasks.segment"
EXTENSIONS = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "HEIF": ".heic",
    "AVIF": ".avif",
}


class BrokerUnavailable(Exception):
    """The broker could not be reached to queue the job."""

    def __init__(self, job):
        super().__init__(f"job {job.id} could not be queued")
        self.job = job


class DuplicateSubmit(Exception):
    """A retried submit: the job its Idempotency-Key already created."""

    def __init__(self, job):
        super().__init__(f"job {job.id} was already created with this idempotency key")
        self.job = job


def create_job(owner, upload, info, spec, options, idempotency_key="", **fields):
    """Store the upload, commit the row, then queue the job.

    `fields` are new_job's. Called outside any transaction (the API runs in autocommit): the
    worker must find the committed row when the message arrives. Enqueueing explicitly after
    the commit, rather than in an on_commit hook, lets a broker failure reach the caller as
    BrokerUnavailable. The caller looks the idempotency key up first (job_with_key); two
    retries racing past that look-up meet the unique constraint here, and the later one
    raises DuplicateSubmit.
    """
    job = new_job(owner, upload, info, spec, options, idempotency_key=idempotency_key, **fields)
    try:
        with transaction.atomic():
            job.save(force_insert=True)
    except IntegrityError:
        # Two retries raced past the caller's look-up: the first row won; drop our file.
        delete_job_files(job.id)
        earlier = job_with_key(owner, idempotency_key)
        if earlier is None:
            raise
        raise DuplicateSubmit(earlier) from None
    try:
        enqueue(job)
    except BrokerUnavailable:
        # Not accepted: the client is told 503 and submits again later (safely, with the
        # same Idempotency-Key), so nothing of this attempt may remain to answer that retry.
        job.delete()
        raise
    metrics.job_created(job)
    return job


def new_job(
    owner,
    upload,
    info,
    spec,
    options,
    webhook_url="",
    webhook_events=(),
    idempotency_key="",
    task=None,
    files=None,
    image_url="",
    client_address="",
    batch=None,
    batch_index=None,
):
    """An unsaved job with its input (and `files`) stored in its folder.

    `spec` is the model's, as the resolver answered it; `task` the job's when it is not the
    model's own (a cutout); `files` more uploads to keep beside the input, by file name
    (a cutout's background image). With `image_url` instead of an upload (`upload` and
    `info` None), the worker fetches the photo (workers/fetching.py).
    """
    job = Job(
        owner=owner,
        task=task or spec.task,
        model=spec.name,
        queue=spec.queue,
        options=options,
        input_name=Path(upload.name or "" if upload else urlsplit(image_url).path).name[:255],
        input_url=image_url,
        input_width=info.width if info else None,
        input_height=info.height if info else None,
        webhook_url=webhook_url,
        webhook_events=list(webhook_events),
        idempotency_key=idempotency_key,
        client_address=client_address,
        batch=batch,
        batch_index=batch_index,
    )
    if upload is not None:
        upload.seek(0)
        job.input.save("input" + EXTENSIONS[info.format], upload, save=False)
    for name, extra in (files or {}).items():
        extra.seek(0)
        default_storage.save(job_file_path(job, name), extra)
    return job


def job_with_key(owner, idempotency_key):
    """The owner's job created with this Idempotency-Key, if any."""
    if not idempotency_key:
        return None
    return Job.objects.filter(owner=owner, idempotency_key=idempotency_key).first()


def enqueue(job):
    """Send the job id (only the id) to its model's queue; the task id is the job id.

    Raises BrokerUnavailable and leaves the job as it was when the broker cannot be
    reached. `enqueued_at` moves only once the message is sent, so the reaper finds a job
    whose send failed as stale and sends it again (jobs/reaper.py).
    """
    try:
        current_app.send_task(SEGMENT_TASK, args=[str(job.id)], task_id=str(job.id), queue=job.queue)
    except OperationalError as exc:
        log.error("could not queue job %s: %s", job.id, exc)
        raise BrokerUnavailable(job) from exc
    Job.objects.filter(pk=job.pk).update(enqueued_at=Now())


def delete_job(job):
    """Delete a job; its files go with it (jobs.signals). A running attempt finds the row
    gone and removes what it wrote.

    A batch's unfinished job is canceled first: its end may be the batch's last, which
    finishes the batch and writes its `batch.completed` (jobs/lifecycle/batches.py).
    """
    if job.batch_id and job.status in Job.ACTIVE:
        job.cancel()
    job.delete()


def recover_orphans(worker):
    """Requeue jobs left `running` under this worker name by an earlier, killed process.

    Called when a worker starts: nothing runs under its name before it has started (a
    prefork node runs one job at a time, a batching node several, all in this process), so
    anything still running under that name cannot be running now.
    """
    recovered = []
    for job in Job.objects.filter(status=Job.Status.RUNNING, worker=worker):
        if job.requeue():
            recovered.append(job.id)
            try:
                enqueue(job)
            except BrokerUnavailable:
                pass  # queued, with a stale enqueued_at: the reaper sends it once it can
    if recovered:
        log.warning("requeued %d job(s) orphaned by an earlier %s: %s", len(recovered), worker, recovered)
    return recovered


def run_again(job):
    """Queue a failed job again as a fresh run (the admin's "Run failed jobs again").

    False if the job is no longer failed. Sent at once where the broker answers; where it
    does not, the job waits queued and unsent, and the reaper sends it (jobs/ops/reaper.py).
    """
    if not job.run_again():
        return False
    try:
        enqueue(job)
    except BrokerUnavailable:
        pass  # queued, never sent: the reaper's next pass sends it
    return True
