"""A job's files in media storage: jobs/<id>/input.<ext>, mask.png, overlay.jpg, ..."""

import os

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from jobs.models import job_dir


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
    if not keep and hasattr(default_storage, "path"):
        # FileSystemStorage leaves the empty folder behind; remove it too.
        try:
            os.rmdir(default_storage.path(folder))
        except OSError:
            pass
