"""Files follow their job row, however it is deleted: API, admin, a deleted user's cascade."""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Job
from .storage import delete_job_files


@receiver(post_delete, sender=Job)
def delete_files_of_deleted_job(sender, instance, **kwargs):
    delete_job_files(instance.id)
