"""Celery tasks of the jobs app, never on a model worker: webhook deliveries on the io
worker's `webhooks` queue, and what beat schedules (the reaper, retention, the webhook
sweep) on the housekeeping worker's `housekeeping` queue (settings.CELERY_BEAT_SCHEDULE)."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from jobs.ops import reaper, retention
from jobs.webhooks import outbox


@shared_task(name="jobs.tasks.deliver_webhook", ignore_result=True)
def deliver_webhook(delivery_id):
    outbox.deliver(delivery_id)


@shared_task(name="jobs.tasks.dispatch_webhooks", ignore_result=True)
def dispatch_webhooks():
    return outbox.dispatch_due()


@shared_task(name="jobs.tasks.reap_jobs", ignore_result=True)
def reap_jobs():
    return reaper.reap()


@shared_task(name="jobs.tasks.prune_jobs", ignore_result=True)
def prune_jobs():
    if settings.JOB_RETENTION_DAYS:
        return retention.prune(timedelta(days=settings.JOB_RETENTION_DAYS))
    return None
