"""Worker start-up: choose and check the models, load them per process, recover orphans."""

import logging
import os
import signal

from celery.signals import worker_init, worker_process_init, worker_ready
from django.conf import settings
from django.db import connections

from jobs.lifecycle.services import recover_orphans
from workers import readiness, registry
from workers.catalog import installed_models_of, model_problems, queues_for, worker_model_names

log = logging.getLogger(__name__)

# Set in the main process before the pool forks, so every pool process inherits them.
_served = []
_node = []


@worker_init.connect
def choose_models(sender, **kwargs):
    """Refuse to start a worker whose models cannot be loaded or whose queues do not fit."""
    consumed = set(sender.app.amqp.queues.consume_from)
    _node[:] = [sender.hostname]
    if settings.WEBHOOK_QUEUE in consumed:
        _check_io_worker(consumed)
        return
    names = worker_model_names(consumed)
    problems = [f"{name}: {problem}" for name, problem in model_problems(names)]
    if not names:
        problems.append(
            f"no model to serve on queues {sorted(consumed)}: start the worker with --queues "
            "light (or a heavy model's queue), and install weights with `manage.py fetch_models`"
        )
    elif not problems and set(queues_for(names)) != consumed:
        problems.append(
            f"models {names} are routed to queues {queues_for(names)}, but this worker consumes "
            f"{sorted(consumed)}: start it with --queues {','.join(queues_for(names))}"
        )
    elif not problems:
        # Every job on a consumed queue must find its model here, or it would fail.
        unserved = set(installed_models_of(consumed)) - set(names)
        if unserved:
            problems.append(
                f"queues {sorted(consumed)} also carry jobs for {sorted(unserved)}, which "
                "WORKER_MODELS leaves out: add them, or leave WORKER_MODELS unset"
            )
    if problems:
        _refuse(problems)
    _served[:] = names


def _check_io_worker(consumed):
    # A receiver that hangs for its whole timeout must never hold a model's worker.
    others = consumed - {settings.WEBHOOK_QUEUE}
    if others:
        _refuse(
            [
                f"queue {settings.WEBHOOK_QUEUE} carries webhook deliveries, which never run in a model "
                f"worker: start one worker with --queues {settings.WEBHOOK_QUEUE} and another with "
                f"--queues {','.join(sorted(others))}"
            ]
        )
    _served[:] = []
    log.info("io worker: webhook deliveries, no models")


def _refuse(problems):
    message = "worker cannot start:\n  " + "\n  ".join(problems)
    log.critical(message)
    # Celery logs and swallows exceptions from signal handlers; SystemExit is not one.
    raise SystemExit(message)


@worker_process_init.connect
def load_models(**kwargs):
    # Runs in each pool process after the fork: models load here, once per process, not in
    # the parent (an interpreter's threads do not survive fork) and never per task.
    connections.close_all()  # never share the parent's database sockets
    try:
        registry.load_engines(_served)
    except Exception:
        # A bad weight file fails the same way every time: stop the whole worker, with the
        # reason in its log, instead of letting the pool restart this process forever.
        log.critical("worker cannot start: loading %s failed", _served, exc_info=True)
        os.kill(os.getppid(), signal.SIGTERM)
        os._exit(1)
    log.info("worker process ready with models: %s", ", ".join(registry.loaded_names()))
    if _served:  # loaded and warmed up: now /readyz may count this process
        readiness.announce(_node[0], registry.loaded_names())


@worker_ready.connect
def requeue_orphans(sender, **kwargs):
    recover_orphans(sender.hostname)
