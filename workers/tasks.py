"""Celery tasks: thin adapters over the pipeline. The broker carries only the job id."""

from celery import shared_task
from django.db import DatabaseError

from workers.pipeline import StoreUnavailable, run_job

# A file store that is down: the job was queued again; send it again after 5 s, doubling up
# to a minute, for about 20 minutes. Past that it stays queued and the reaper sends it again.
STORE_RETRIES = 24


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
    # A retry's earlier run has ended (it raised): a job it left `running` is taken over as
    # from a redelivered message, also by a batching worker that shares its node name.
    redelivered = bool(delivery.get("redelivered")) or self.request.retries > 0
    try:
        run_job(job_id, worker=self.request.hostname, redelivered=redelivered)
    except StoreUnavailable as exc:
        countdown = min(60, 5 * 2**self.request.retries)
        raise self.retry(exc=exc, countdown=countdown, max_retries=STORE_RETRIES) from None
