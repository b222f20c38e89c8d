"""Receivers that follow a job: its files on delete; its webhooks, waiters and metrics on a change."""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from . import metrics, waiting
from .models import Job, job_transitioned
from .storage import delete_job_files
from .webhooks import outbox


@receiver(post_delete, sender=Job)
def delete_files_of_deleted_job(sender, instance, **kwargs):
    # However the row goes: API, admin, a deleted user's cascade.
    delete_job_files(instance.id)


@receiver(job_transitioned)
def notify_of_transition(sender, job, **kwargs):
    outbox.record_event(job)
    waiting.publish_if_finished(job)
    metrics.job_transitioned(job)
