"""The Celery app. Workers are started with `celery -A segsite worker` (see Procfile)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "segsite.settings")

app = Celery("segsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers", "jobs"])
