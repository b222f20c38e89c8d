"""Which model a request gets, and whether it can run now: one answer for every endpoint.

The REST API, the MAX and PixelLib endpoints, `/api/v1/models/` and `/readyz` all ask
here. A model is known if a live worker announces it (core.serving) or its folder is in
this host's SEGMENT_MODELS_DIR (spec only; the web host needs no weights). It is
available only while a live worker serves it: otherwise every endpoint answers 503
`model_unavailable` with Retry-After, since the request is fine and a worker may come.
"""

import logging
from dataclasses import dataclass, field

import redis

from core import serving
from core.repository import local_specs
from core.specs import CUTOUT, SEMANTIC

log = logging.getLogger(__name__)

# Long enough for a worker to start and load its models, short enough for a phone to retry.
UNAVAILABLE_RETRY_AFTER = 30


class ModelRefused(Exception):
    """A request's model cannot be used: a code, a message and the HTTP status to answer."""

    def __init__(self, code, message, status=400, retry_after=None):
        super().__init__(message)
        self.code, self.message, self.status, self.retry_after = code, message, status, retry_after


@dataclass
class Entry:
    spec: object
    workers: list = field(default_factory=list)  # live workers that serve it; [] if none
    sha256: str | None = None  # of the weights a live worker loaded


def catalog():
    """{name: Entry} of every known model, in name order; a served spec wins over the local one."""
    try:
        served = serving.served()
    except redis.RedisError as exc:
        raise ModelRefused(
            "queue_unavailable", "The job queue is unavailable; try again shortly.", 503, retry_after=30
        ) from exc
    entries = {name: Entry(spec) for name, spec in local_specs().items()}
    for name, item in served.items():
        entries[name] = Entry(item.spec, item.workers, item.sha256)
    return dict(sorted(entries.items()))


def known_models():
    """catalog(), or with Redis unreachable the local specs with no workers: for reports
    (/readyz, /metrics) that must answer whatever is down."""
    try:
        return catalog()
    except ModelRefused:
        return {name: Entry(spec) for name, spec in local_specs().items()}


def default_models(entries=None):
    """{task: model name} a job naming no model gets: of the models a live worker serves,
    the task's highest `priority`; with none served, the highest known (so that the
    refusal names it). Tasks no model does are absent."""
    entries = catalog() if entries is None else entries
    best = {}
    for name, entry in entries.items():
        rank = (bool(entry.workers), entry.spec.priority, name)
        task = entry.spec.task
        if task not in best or rank > best[task][0]:
            best[task] = (rank, name)
    return {task: name for task, (_, name) in sorted(best.items())}


def resolve(task, requested=None):
    """The spec of the model a `task` request runs (`requested`, else the default).

    Raises ModelRefused: unknown_model or model_task_mismatch (400, the request is wrong),
    model_unavailable (503, no live worker serves it now).
    """
    entries = catalog()
    # A cutout runs a model of any task; with none named, the semantic default (the best
    # person IoU on VOC scene photos: README, "Effects").
    model_task = SEMANTIC if task == CUTOUT else task
    name = requested or default_models(entries).get(model_task)
    if name is None:
        raise ModelRefused(
            "model_unavailable", f"This server has no {task} model.", 503, UNAVAILABLE_RETRY_AFTER
        )
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(n for n, e in entries.items() if task == CUTOUT or e.spec.task == task) or "none"
        raise ModelRefused(
            "unknown_model", f"unknown model {name!r}; {task} models: {known} (GET /api/v1/models/)"
        )
    if task != CUTOUT and entry.spec.task != task:
        raise ModelRefused(
            "model_task_mismatch", f"model {name!r} does {entry.spec.task} segmentation, not {task}"
        )
    if not entry.workers:
        raise ModelRefused(
            "model_unavailable",
            f"No live worker serves model {name!r} now; try again shortly.",
            503,
            UNAVAILABLE_RETRY_AFTER,
        )
    return entry.spec
