"""Which live workers serve which models: the one answer, from the workers' heartbeats.

A worker pool process announces itself once its models are loaded and warmed up with one
inference, then renews the announcement every RENEW_SECONDS from a daemon thread. The
announcement carries each model's whole spec (labels, task, queue, licence) and the
sha256 of the weights it loaded, so the web process needs no weight file and no model
folder to know, list, validate and route every model a worker serves. Each announcement
expires after TTL_SECONDS: a process that dies (however it dies) drops out within that
time, without anyone having to clean up after it.

`/api/v1/models/`, submit-time model resolution, the compatible APIs and `/readyz` all
read served(); nothing else answers "is this model available".
"""

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import redis

from core import redis_keys
from core.redis_clients import redis_client
from core.specs import SpecError, parse_spec

log = logging.getLogger(__name__)

TTL_SECONDS = 15
RENEW_SECONDS = 5
# A submit asks served() once; a burst of submits must not each SCAN Redis.
CACHE_SECONDS = 1.0


@dataclass
class Served:
    spec: object  # the ModelSpec as the worker announced it
    sha256: str | None
    workers: list = field(default_factory=list)  # sorted Celery node names


def _redis():
    from django.conf import settings

    return redis_client(settings.REDIS_URL)


def announcement(models):
    """What a process announces for its loaded models: [{spec, sha256}]."""
    return [{"spec": model.spec.to_dict(), "sha256": model.sha256} for model in models]


# Set by withdraw(): this process's renewing thread stops. The lock makes sure that no
# renewal lands after the withdrawal's delete.
_withdrawn = threading.Event()
_renewing = threading.Lock()


def announce(worker, models):
    """Start announcing this process (of node `worker`) as ready with `models`."""
    payload = announcement(models)

    def renew():
        while True:
            with _renewing:
                if _withdrawn.is_set():
                    return
                try:
                    publish(worker, payload)
                except redis.RedisError as exc:  # the broker's Redis is down: nothing to run anyway
                    log.warning("could not announce readiness: %s", exc)
            _withdrawn.wait(RENEW_SECONDS)

    threading.Thread(target=renew, name="readiness", daemon=True).start()


def _key(worker, pid):
    return f"{redis_keys.SERVING}{worker}:{pid}"


def publish(worker, payload, pid=None):
    """One announcement, valid for TTL_SECONDS; returns its key."""
    pid = pid or os.getpid()
    key = _key(worker, pid)
    _redis().set(key, json.dumps({"worker": worker, "pid": pid, "models": payload}), ex=TTL_SECONDS)
    return key


def withdraw(worker):
    """This process stops announcing (a graceful shutdown, or a stuck runtime): it drops
    out at once, not in TTL_SECONDS, and its renewing thread stops."""
    with _renewing:  # a renewal under way ends first
        _withdrawn.set()
    try:
        _redis().delete(_key(worker, os.getpid()))
    except redis.RedisError as exc:
        log.warning("could not withdraw the readiness announcement: %s", exc)


_cache = {"at": -CACHE_SECONDS, "served": {}}


def forget():
    """Drop this process's cached answer (tests, and right after a worker announces)."""
    _cache["at"] = -CACHE_SECONDS


def served():
    """{model name: Served} for every model some live worker has loaded.

    Raises redis.RedisError when Redis cannot be asked; callers decide what that means.
    """
    now = time.monotonic()
    if now - _cache["at"] < CACHE_SECONDS:
        return _cache["served"]
    client = _redis()
    keys = list(client.scan_iter(match=f"{redis_keys.SERVING}*", count=500))
    models = {}
    for raw in client.mget(keys) if keys else []:
        if raw is None:  # expired between the scan and the read
            continue
        announced = json.loads(raw)
        for item in announced["models"]:
            name = item["spec"].get("name")
            if name not in models:
                try:
                    spec = parse_spec(item["spec"], where=f"worker {announced['worker']}'s {name}")
                except SpecError as exc:  # a worker of another version: skip its model, say so
                    log.warning("ignoring an announced model: %s", exc)
                    continue
                models[name] = Served(spec, item.get("sha256"))
            if announced["worker"] not in models[name].workers:
                models[name].workers.append(announced["worker"])
    for entry in models.values():
        entry.workers.sort()
    _cache.update(at=now, served=models)
    return models
