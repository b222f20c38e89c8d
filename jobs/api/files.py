"""Signed, expiring URLs for a job's files, so image loaders need no auth header.

A URL names the job and the file and carries `token=<timestamp>:<signature>` over both.
Without a valid token only the owner (token-authenticated) gets the file; anyone else
gets 404, as if the job did not exist.
"""

from django.conf import settings
from django.core import signing
from django.urls import reverse

from jobs.api.links import absolute_url

_SALT = "jobs.files"


def _signer():
    return signing.TimestampSigner(salt=_SALT)


def signed_file_path(job, name):
    value = f"{job.id}/{name}"
    token = _signer().sign(value)[len(value) + 1 :]
    return reverse("job-file", kwargs={"pk": job.id, "name": name}) + f"?token={token}"


def signed_file_url(request, job, name):
    return absolute_url(request, signed_file_path(job, name))


def token_is_valid(job_id, name, token):
    if not token:
        return False
    try:
        _signer().unsign(f"{job_id}/{name}:{token}", max_age=settings.FILE_URL_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired is a subclass
        return False
    return True


def job_file_names(job):
    """Files of this job a client may fetch: its input and its outputs."""
    names = set(job.outputs.values()) if job.status == job.Status.SUCCEEDED else set()
    if job.input:
        names.add(job.input_filename)
    return names
