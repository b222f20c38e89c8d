"""Worker start-up: choose and check the models, load them per process, recover orphans."""

import logging
import os
import signal

from celery.concurrency import get_implementation
from celery.concurrency.thread import TaskPool as ThreadPool
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)
from django.conf import settings
from django.db import connections

from core import serving
from core.repository import repository
from jobs.lifecycle.services import recover_orphans
from workers import registry, watchdog
from workers.weights import weights_problem

log = logging.getLogger(__name__)

# Set in the main process before the pool forks, so every pool process inherits them.
_served = []
_node = []


@worker_init.connect
def choose_models(sender, **kwargs):
    """Refuse to start a worker whose models cannot be loaded or whose queues do not fit."""
    consumed = set(sender.app.amqp.queues.consume_from)
    _node[:] = [sender.hostname]
    if consumed & {settings.WEBHOOK_QUEUE, settings.HOUSEKEEPING_QUEUE}:
        _check_service_worker(consumed)
        return
    repo = repository()
    # A broken folder may be a model meant for this worker: never start without it silently.
    problems = [f"{repo.folder / name}: {problem}" for name, problem in repo.problems.items()]
    installed = {
        name for name, spec in repo.specs.items() if spec.queue in consumed and not weights_problem(spec)
    }
    names = list(settings.WORKER_MODELS) or sorted(installed)
    for name in names:
        if name not in repo.specs:
            problems.append(
                f"{name}: no such model in {repo.folder}; there: {', '.join(repo.specs) or 'none'}"
            )
        elif problem := weights_problem(repo.specs[name]):
            problems.append(f"{name}: {problem}")
    if problems:
        _refuse(problems)
    queues = sorted({repo.specs[name].queue for name in names})
    if not names:
        problems.append(
            f"no model to serve on queues {sorted(consumed)}: start the worker with --queues "
            "light (or a heavy model's queue), and install weights with `manage.py fetch_models`"
        )
    elif set(queues) != consumed:
        problems.append(
            f"models {names} are routed to queues {queues}, but this worker consumes "
            f"{sorted(consumed)}: start it with --queues {','.join(queues)}"
        )
    elif unserved := installed - set(names):
        # Every job on a consumed queue must find its model here, or it would fail.
        problems.append(
            f"queues {sorted(consumed)} also carry jobs for {sorted(unserved)}, which "
            "WORKER_MODELS leaves out: add them, or leave WORKER_MODELS unset"
        )
    if problems:
        _refuse(problems)
    _served[:] = [repo.specs[name] for name in names]
    if issubclass(get_implementation(sender.pool_cls), ThreadPool):
        # No pool process is forked: the models live in this process, its jobs on threads
        # sharing each model through a Batcher (BATCH_MAX photos within BATCH_WAIT_MS).
        try:
            _load(batching=(settings.BATCH_MAX, settings.BATCH_WAIT_MS / 1000, settings.JOB_TIME_LIMIT))
        except Exception as exc:
            _refuse([f"loading {[spec.name for spec in _served]} failed: {exc}"])
        watchdog.watch(registry.batchers(), stop=_stop_warm)
    elif settings.BATCH_MAX > 1:
        log.warning(
            "BATCH_MAX=%d is ignored: batches are made by a worker started with --pool threads",
            settings.BATCH_MAX,
        )


def _stop_warm():
    """Stop announcing, then stop this worker as SIGTERM does: running jobs finish first."""
    serving.withdraw(_node[0])
    os.kill(os.getpid(), signal.SIGTERM)


def _service_queues():
    """The queues whose worker loads no model and consumes nothing else: its role, what the
    queue carries, and why it runs alone."""
    return {
        settings.HOUSEKEEPING_QUEUE: (
            "housekeeping",
            "the reaper, retention and the webhook sweep",
            # A reaper pass that waits behind jobs or deliveries past its expiry is lost.
            "which run in a worker of their own",
        ),
        settings.WEBHOOK_QUEUE: (
            "io",
            "webhook deliveries",
            # A receiver that hangs for its whole timeout must never hold a model's worker.
            "which never run in a model worker",
        ),
    }


def _check_service_worker(consumed):
    queue, (role, carries, rule) = next((q, about) for q, about in _service_queues().items() if q in consumed)
    others = consumed - {queue}
    if others:
        _refuse(
            [
                f"queue {queue} carries {carries}, {rule}: start one worker with --queues {queue} "
                f"and another with --queues {','.join(sorted(others))}"
            ]
        )
    _served[:] = []
    log.info("%s worker: %s, no models", role, carries)


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
        _load()
    except Exception:
        # A bad weight file fails the same way every time: stop the whole worker, with the
        # reason in its log, instead of letting the pool restart this process forever.
        log.critical("worker cannot start: loading %s failed", _served, exc_info=True)
        os.kill(os.getppid(), signal.SIGTERM)
        os._exit(1)


def _load(batching=None):
    registry.load_models(_served, batching=batching)
    loaded = registry.loaded()
    log.info("worker process ready with models: %s", ", ".join(model.spec.name for model in loaded))
    if loaded:  # loaded and warmed up: now the web may route jobs here
        serving.announce(_node[0], loaded)


@worker_process_shutdown.connect
@worker_shutdown.connect
def stop_announcing(**kwargs):
    if _node and registry.loaded():
        serving.withdraw(_node[0])


@worker_ready.connect
def requeue_orphans(sender, **kwargs):
    recover_orphans(sender.hostname)
