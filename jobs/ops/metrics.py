"""Prometheus metrics at /metrics, right however many web and worker processes run.

Each process adds what happened to Redis hashes (HINCRBY is atomic) once the change is
committed, and /metrics reads the sums, so a job counts once wherever it ran, and a
restarted worker loses nothing. Redis restarted empty starts the counters again at zero,
which Prometheus's rate() and increase() read as a counter reset. Queue depths are read
from the broker at scrape time.
"""

import logging

import redis
from django.conf import settings
from django.db import transaction
from kombu.transport.redis import Channel
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from core import redis_keys
from core.redis_clients import redis_client
from jobs.lifecycle.resolver import known_models
from jobs.ops.broker import is_redis

log = logging.getLogger(__name__)

JOBS, SECONDS, WEBHOOKS = redis_keys.METRICS_JOBS, redis_keys.METRICS_SECONDS, redis_keys.METRICS_WEBHOOKS
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
HISTOGRAMS = {
    "queue_wait": "Seconds from submit to the start of the attempt that succeeded",
    "inference": "Seconds of model inference of a succeeded job",
}


def _after_commit(write):
    def run():
        try:
            pipe = redis_client(settings.REDIS_URL).pipeline(transaction=False)
            write(pipe)
            pipe.execute()
        except redis.RedisError as exc:  # a metric is not worth failing a job for
            log.warning("could not record a metric: %s", exc)

    transaction.on_commit(run, robust=True)


def job_created(job):
    _after_commit(lambda pipe: pipe.hincrby(JOBS, f"created|{job.model}", 1))


def job_transitioned(job):
    """Within the status change's transaction: count finished jobs, time succeeded ones."""
    if job.status not in job.TERMINAL:
        return
    model, status = job.model, job.status
    observed = {}
    if status == job.Status.SUCCEEDED:
        observed = {"queue_wait": (job.queue_ms or 0) / 1000, "inference": (job.inference_ms or 0) / 1000}

    def write(pipe):
        pipe.hincrby(JOBS, f"{status}|{model}", 1)
        for name, seconds in observed.items():
            bucket = next((le for le in BUCKETS if seconds <= le), "+Inf")
            pipe.hincrby(SECONDS, f"{name}|{model}|{bucket}", 1)
            pipe.hincrbyfloat(SECONDS, f"{name}|{model}|sum", seconds)

    _after_commit(write)


def webhook_attempt(outcome):
    """`delivered`, `retrying` or `failed`, after an attempt is recorded."""
    _after_commit(lambda pipe: pipe.hincrby(WEBHOOKS, outcome, 1))


class Collector:
    """What /metrics reports, read from Redis at each scrape."""

    def collect(self):
        client = redis_client(settings.REDIS_URL)
        yield from _job_counters(client.hgetall(JOBS))
        yield from _histograms(client.hgetall(SECONDS))
        webhooks = CounterMetricFamily(
            "segment_webhook_attempts", "Webhook delivery attempts by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(client.hgetall(WEBHOOKS).items()):
            webhooks.add_metric([outcome.decode()], int(count))
        yield webhooks
        if is_redis(settings.CELERY_BROKER_URL):
            yield _queue_depths(redis_client(settings.CELERY_BROKER_URL))


def _job_counters(raw):
    created = CounterMetricFamily("segment_jobs_created", "Jobs accepted", labels=["model"])
    finished = CounterMetricFamily(
        "segment_jobs_finished", "Jobs ended, by final status", labels=["model", "status"]
    )
    for field, count in sorted(raw.items()):
        event, model = field.decode().split("|", 1)
        if event == "created":
            created.add_metric([model], int(count))
        else:
            finished.add_metric([model, event], int(count))
    return created, finished


def _histograms(raw):
    fields = {field.decode(): float(value) for field, value in raw.items()}
    for name, help_text in HISTOGRAMS.items():
        family = HistogramMetricFamily(f"segment_job_{name}_seconds", help_text, labels=["model"])
        models = sorted({field.split("|")[1] for field in fields if field.startswith(f"{name}|")})
        for model in models:
            cumulative, buckets = 0, []
            for le in (*BUCKETS, "+Inf"):
                cumulative += int(fields.get(f"{name}|{model}|{le}", 0))
                buckets.append((str(le), cumulative))
            family.add_metric([model], buckets, sum_value=fields.get(f"{name}|{model}|sum", 0.0))
        yield family


def _queue_depths(broker):
    depth = GaugeMetricFamily("segment_queue_depth", "Messages waiting in each queue", labels=["queue"])
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    prefix = options.get("global_keyprefix", "")
    steps = options.get("priority_steps", Channel.priority_steps)
    services = {settings.WEBHOOK_QUEUE, settings.HOUSEKEEPING_QUEUE}
    for queue in sorted({entry.spec.queue for entry in known_models().values()} | services):
        # kombu keeps each priority of a queue in a list of its own (Channel._q_for_pri).
        keys = [prefix + queue + (f"{Channel.sep}{step}" if step else "") for step in steps]
        depth.add_metric([queue], sum(broker.llen(key) for key in keys))
    return depth
