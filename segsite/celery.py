"""The Celery app. Workers are started with `celery -A segsite worker` (see Procfile)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "segsite.settings")

app = Celery("segsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers", "jobs"])


@task_prerun.connect
@task_postrun.connect
def close_old_connections(task, **kwargs):
    """A task's database connections, kept or closed as Django does around a request: closed
    once older than DB_CONN_MAX_AGE or broken (a restarted database), else checked on first
    use. In the task's own thread, so a threads pool's threads each keep their own. Not for
    a task run eagerly, in its caller's thread and transaction (as Celery's fixup does)."""
    from django.db import close_old_connections  # the app is made before Django is set up

    if not task.request.is_eager:
        close_old_connections()
