"""Celery tasks: thin adapters over the pipeline. The broker carries only the job id."""

from celery import shared_task
from django.db import DatabaseError

from workers.pipeline import run_job


# A database hiccup (a restart, a failover) before the job is recorded must not drop it:
# retry with backoff, up to about two minutes. Everything else is handled in run_job.
@shared_task(
    name="workers.tasks.segment",
    bind=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=6,
)
def segment(self, job_id):
    delivery = self.request.delivery_info or {}
    run_job(job_id, worker=self.request.hostname, redelivered=bool(delivery.get("redelivered")))
