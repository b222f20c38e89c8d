"""A job's files in media storage: jobs/<id>/input.<ext>, mask.png, overlay.jpg, ...

Through Django's storage API only, so that the same code runs on a local disk and on an
S3 bucket (django-storages), where folders do not exist: a prefix lists the objects under it.
"""

import os

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as S3ConnectionError
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage

from jobs.models import job_dir

# How long a client should wait before retrying while the store is unreachable: a restart of
# an object store takes seconds.
STORE_RETRY_AFTER = 10


def is_unreachable(exc):
    """Whether an error from the storage API means the store itself is down, restarting or
    overloaded (retry later), rather than a missing file or a refused request."""
    if isinstance(exc, (S3ConnectionError, HTTPClientError)):  # refused, reset, timed out
        return True
    if isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
    return False


def job_file_path(job, name):
    return f"{job_dir(job.id)}/{name}"


def write_job_file(job, name, data):
    """Write bytes under the job's folder, replacing a file left by an earlier attempt."""
    path = job_file_path(job, name)
    # Storage.save() renames on collision (mask_abc123.png); a retried attempt must
    # overwrite instead, so delete first.
    default_storage.delete(path)
    return default_storage.save(path, ContentFile(data))


def delete_job_files(job_id, keep=()):
    """Delete every file in the job's folder except those named in `keep`."""
    folder = job_dir(job_id)
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        if name not in keep:
            default_storage.delete(f"{folder}/{name}")
    if not keep and isinstance(default_storage._wrapped, FileSystemStorage):
        # A local disk leaves the empty folder behind (an object store has none); remove it.
        try:
            os.rmdir(default_storage.path(folder))
        except OSError:
            pass


def last_modified(job_id):
    """When the job's newest file was written (a timestamp), or None if it has none.

    An object store has no folder to ask: its files are asked one by one."""
    folder = job_dir(job_id)
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return None
    times = [default_storage.get_modified_time(f"{folder}/{name}").timestamp() for name in files]
    return max(times, default=None)
