"""Retention: finished jobs and their files go after JOB_RETENTION_DAYS, and files whose
job is gone go too. Run daily by beat, or `manage.py prune_jobs --older-than 7d`."""

import logging
import time
import uuid

from django.core.files.storage import default_storage
from django.utils import timezone

from jobs.lifecycle.storage import delete_job_files, last_modified
from jobs.models import Batch, Job

log = logging.getLogger(__name__)

# A job's input is written just before its row (services.create_job): a folder younger
# than this may belong to a submit still in flight.
ORPHAN_GRACE_SECONDS = 3600


def prune(older_than):
    """Delete finished jobs created before now - `older_than` (a timedelta), and orphaned
    files. Queued and running jobs are never pruned. Returns the counts."""
    cutoff = timezone.now() - older_than
    jobs = 0
    # One by one, so that each deletion removes its files (jobs.signals) and cascades to
    # its webhook deliveries; iterator() keeps memory flat over a large backlog.
    for job in Job.objects.filter(status__in=Job.TERMINAL, created_at__lt=cutoff).iterator():
        job.delete()
        jobs += 1
    # A batch goes with its last job: an empty one has nothing left to show.
    _, deleted = Batch.objects.filter(created_at__lt=cutoff, jobs__isnull=True).delete()
    counts = {
        "jobs": jobs,
        "batches": deleted.get("jobs.Batch", 0),
        "orphaned_folders": delete_orphaned_files(),
    }
    if any(counts.values()):
        log.info("pruned: %s", counts)
    return counts


def delete_orphaned_files(grace=ORPHAN_GRACE_SECONDS):
    """Delete job folders whose job row no longer exists (a crash between writing a file
    and its row, a delete whose file removal failed)."""
    try:
        folders, _ = default_storage.listdir("jobs")
    except FileNotFoundError:
        return 0
    ids = {name for name in folders if _is_uuid(name)}  # anything else is not ours
    existing = {str(pk) for pk in Job.objects.filter(pk__in=ids).values_list("pk", flat=True)}
    deleted = 0
    for name in ids - existing:
        written = last_modified(name)
        if written is None or time.time() - written > grace:
            delete_job_files(name)
            deleted += 1
    return deleted


def _is_uuid(name):
    try:
        uuid.UUID(name)
    except ValueError:
        return False
    return True
