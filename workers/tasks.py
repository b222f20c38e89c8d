"""Celery tasks: thin adapters over the pipeline. The broker carries only the job id."""

from celery import shared_task

from .pipeline import run_job


@shared_task(name="workers.tasks.segment", bind=True)
def segment(self, job_id):
    run_job(job_id, worker=self.request.hostname)
