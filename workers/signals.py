"""Worker process start-up: load resident engines, recover this node's orphaned jobs."""

import logging

from celery.signals import worker_init, worker_process_init, worker_ready
from django.db import connections

from jobs.services import recover_orphans

from . import registry
from .catalog import model_problems, worker_model_names

log = logging.getLogger(__name__)


@worker_process_init.connect
def load_models(**kwargs):
    # Runs in each pool child after the fork: models load here, once per process, not in
    # the parent (an interpreter's threads do not survive fork) and never per task.
    connections.close_all()  # never share the parent's database sockets
    registry.load_engines(worker_model_names())
    log.info("worker process ready with models: %s", ", ".join(registry.loaded_names()))


@worker_ready.connect
def requeue_orphans(sender, **kwargs):
    recover_orphans(sender.hostname)


@worker_init.connect
def check_models(**kwargs):
    """Refuse to start a worker whose models cannot be loaded, saying which and why."""
    names = worker_model_names()
    problems = [f"{name}: {problem}" for name, problem in model_problems(names)]
    if not names:
        problems.append("no model to serve: install weights with `python manage.py fetch_models`")
    if problems:
        message = "worker cannot start:\n  " + "\n  ".join(problems)
        log.critical(message)
        # Celery logs and swallows exceptions from signal handlers; SystemExit is not one.
        raise SystemExit(message)
