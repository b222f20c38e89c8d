"""Running a job to completion inside one request, for the synchronous protocols."""

from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse
from rest_framework import status

from core.imageio import STATUS_BY_CODE
from jobs.api import submission
from jobs.api.backpressure import check_capacity
from jobs.api.errors import APIError, job_deleted
from jobs.api.links import absolute_url
from jobs.api.throttling import anonymous_address
from jobs.lifecycle.storage import job_file_path
from jobs.lifecycle.waiting import waiting_slot
from jobs.models import Job

# A synchronous client would rather wait a moment for a slot than be told to retry.
SLOT_WAIT_SECONDS = 5


class NotFinished(APIError):
    """The job outlived COMPAT_TIMEOUT: 202 with its id, so the client can poll it."""

    def __init__(self, request, job):
        super().__init__(
            "not_finished",
            f"The job did not finish within {settings.COMPAT_TIMEOUT} s; it is still {job.status}. "
            "Poll job_url (with a token) for its result.",
            status.HTTP_202_ACCEPTED,
        )
        self.extra = {"job_id": str(job.id), "job_url": job_url(request, job)}


def job_url(request, job):
    return absolute_url(request, reverse("job-detail", kwargs={"pk": job.id}))


def run_to_completion(request, upload, info, spec, options=None, **job_fields):
    """Queue a job as the API does and wait for it; return it succeeded, or raise.

    `job_fields` go to services.create_job: `task` (cutout), `files`, `image_url`.
    """
    with waiting_slot(SLOT_WAIT_SECONDS) as free:
        if not free:  # checked before the job exists, so no job is left behind unwatched
            raise APIError(
                "busy",
                "Too many requests are waiting for results on this server; try again shortly.",
                status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": "5"},
            )
        address = anonymous_address(request)
        check_capacity(request.user, address)
        job = submission.create(
            request.user, upload, info, spec, options or {}, client_address=address, **job_fields
        )
        job = submission.wait_for(job, settings.COMPAT_TIMEOUT)
    if job.status == Job.Status.SUCCEEDED:
        return job
    if job.status in Job.ACTIVE:
        raise NotFinished(request, job)
    if job.status == Job.Status.CANCELED:
        code = status.HTTP_409_CONFLICT
    else:
        # An image only the worker could tell was broken is still the client's fault.
        code = STATUS_BY_CODE.get(job.error_code, status.HTTP_502_BAD_GATEWAY)
    error = APIError(
        job.error_code or "canceled", job.error_message or "The job was canceled before it finished.", code
    )
    error.extra = {"job_id": str(job.id), "job_url": job_url(request, job)}
    raise error


def read_output(job, kind):
    """The bytes of one of a finished job's files (mask, overlay, ...)."""
    try:
        with default_storage.open(job_file_path(job, job.outputs[kind]), "rb") as fileobj:
            return fileobj.read()
    except FileNotFoundError:  # deleted between its end and this read
        raise job_deleted() from None
