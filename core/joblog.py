"""The job a log line belongs to, without passing it to every logger call.

run_job() sets the current job id for the duration of a job (a context variable, so threads
and tasks do not mix them up); the filter adds it to every record: `job_id` for the JSON
format, and a `job=<id> ` tag at the start of the plain format's message.
"""

import contextvars
import logging
from contextlib import contextmanager

from pythonjsonlogger.json import JsonFormatter

current_job = contextvars.ContextVar("current_job", default=None)


@contextmanager
def job_context(job_id):
    token = current_job.set(str(job_id))
    try:
        yield
    finally:
        current_job.reset(token)


class JobContextFilter(logging.Filter):
    def filter(self, record):
        job_id = getattr(record, "job_id", None) or current_job.get()
        record.job_id = job_id
        record.job_tag = f"job={job_id} " if job_id else ""
        return True


class JobJsonFormatter(JsonFormatter):
    """python-json-logger's formatter, less the plain format's `job_tag`."""

    def add_fields(self, log_data, record, message_dict):
        super().add_fields(log_data, record, message_dict)
        log_data.pop("job_tag", None)
