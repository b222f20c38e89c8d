"""Receivers for writes that bypass the Job's transitions: deletes (the API's, the admin's,
a deleted user's cascade) and saves in the admin. A status change's own effects are called
explicitly, from jobs/lifecycle/effects.py."""

import logging

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from jobs.api import readcache
from jobs.lifecycle.storage import delete_job_files, is_unreachable
from jobs.models import Job

log = logging.getLogger(__name__)


@receiver(post_delete, sender=Job)
def delete_files_of_deleted_job(sender, instance, **kwargs):
    # However the row goes: API, admin, a deleted user's cascade.
    try:
        delete_job_files(instance.id)
    except Exception as exc:
        if not is_unreachable(exc):
            raise
        # The row goes all the same: retention's orphan sweep removes the files later.
        log.warning("job %s deleted; its files stay until the store is back: %s", instance.id, exc)


@receiver(post_save, sender=Job)
@receiver(post_delete, sender=Job)
def forget_cached_status(sender, instance, created=False, **kwargs):
    # Writes outside the transitions: the admin's, a deletion. A new job has no entry yet.
    if not created:
        readcache.forget(instance.id)


@receiver(post_delete, sender=Token)
def forget_deleted_token(sender, instance, **kwargs):
    readcache.forget_tokens([instance.key])


@receiver(post_save, sender=get_user_model())
def forget_tokens_of_changed_user(sender, instance, **kwargs):
    # A deactivated user's cached token must stop answering at once.
    readcache.forget_tokens(list(Token.objects.filter(user=instance).values_list("key", flat=True)))
