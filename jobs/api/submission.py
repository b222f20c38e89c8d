"""Submitting a job from a request, shared by the REST API and every compatible endpoint.

Each endpoint parses its own protocol, resolves its model (jobs.lifecycle.resolver) and
decodes the image (uploads.inspect_upload); then all of them create, queue and wait here,
so a job from `/model/predict` is the same job, with the same limits and errors, as one
from `POST /api/v1/jobs/`.
"""

from jobs.api.errors import job_deleted
from jobs.api.uploads import queue_unavailable
from jobs.lifecycle.services import BrokerUnavailable, create_job
from jobs.lifecycle.waiting import wait_until_finished
from jobs.models import Job


def create(user, upload, info, spec, options, **job_fields):
    """Store and queue the job; 503 `queue_unavailable` (nothing kept) when the broker is down.

    The caller has checked capacity (backpressure.check_capacity) before decoding, so a
    full queue costs no decode. Raises DuplicateSubmit for a raced Idempotency-Key.
    """
    try:
        return create_job(user, upload, info, spec, options, **job_fields)
    except BrokerUnavailable:
        raise queue_unavailable() from None


def wait_for(job, seconds):
    """The job once it has finished or `seconds` have passed, fresh from the database.

    Holds one of this process's waiting slots (waiting.waiting_slot), which the caller
    took. 409 `job_deleted` if it was deleted meanwhile.
    """
    wait_until_finished(job.id, seconds)
    fresh = Job.objects.filter(pk=job.pk).first()
    if fresh is None:
        raise job_deleted()
    return fresh
