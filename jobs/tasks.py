"""Celery tasks of the jobs app: webhook deliveries, on the `webhooks` queue only."""

from celery import shared_task

from .webhooks import outbox


@shared_task(name="jobs.tasks.deliver_webhook", ignore_result=True)
def deliver_webhook(delivery_id):
    outbox.deliver(delivery_id)


@shared_task(name="jobs.tasks.dispatch_webhooks", ignore_result=True)
def dispatch_webhooks():
    return outbox.dispatch_due()
