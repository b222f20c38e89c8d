"""Operators' endpoints: /healthz (the process answers), /readyz (it can do its work) and
/metrics (Prometheus). Plain Django views: no token, no throttling, no database for
/healthz, so a load balancer's probes never cost more than they must."""

import hmac
import logging
import threading
import time

import redis
from celery import current_app
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from jobs.api.errors import error_body
from jobs.lifecycle.resolver import default_models, known_models
from jobs.ops.metrics import Collector

log = logging.getLogger(__name__)


@require_safe
def healthz(request):
    return JsonResponse({"status": "ok"})


# /readyz answers from one evaluation for this long: it runs a query, a broker connection
# and a Redis read, which a flood of probes (it needs no token) must not multiply.
READY_CACHE_SECONDS = 1.5
_readiness = {"at": -READY_CACHE_SECONDS, "answer": None}
_readiness_lock = threading.Lock()


@require_safe
def readyz(request):
    """200 once the database and the broker answer and every task has a model that a live
    worker loaded and warmed up (so a job naming no model can run); 503 otherwise, with
    every check's result so the operator sees which one failed: booleans, stable codes and
    worker counts, never an error's text or a host's name (the log has those)."""
    body, status = _ready_answer()
    return JsonResponse(body, status=status)


def _ready_answer():
    # One evaluation at a time: the probes that arrive meanwhile wait for it and share it.
    with _readiness_lock:
        if time.monotonic() - _readiness["at"] >= READY_CACHE_SECONDS:
            _readiness["answer"] = _evaluate_readiness()
            _readiness["at"] = time.monotonic()
        return _readiness["answer"]


def forget_readiness():
    """Evaluate afresh on the next probe (tests that change what it checks)."""
    _readiness["at"] = -READY_CACHE_SECONDS


def _evaluate_readiness():
    checks = {"database": _check_database(), "broker": _check_broker()}
    entries = known_models()
    defaults = default_models(entries)
    required = set(defaults.values())
    models = {
        name: {"task": entry.spec.task, "workers": len(entry.workers), "required": name in required}
        for name, entry in entries.items()
    }
    ready = (
        all(check["ok"] for check in checks.values())
        and bool(required)
        and all(models[name]["workers"] for name in required)
    )
    body = {"status": "ready" if ready else "not_ready", "checks": {**checks, "models": models}}
    return body, 200 if ready else 503


def _check_database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except DatabaseError as exc:
        log.warning("readiness: the database does not answer: %s", exc)
        return {"ok": False, "code": "database_unavailable"}


def _check_broker():
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        return {"ok": True}
    except Exception as exc:  # kombu raises its transport's own errors; any of them means "no"
        log.warning("readiness: the broker does not answer: %s", exc)
        return {"ok": False, "code": "broker_unavailable"}


@require_safe
def metrics(request):
    if not settings.METRICS_TOKEN and not settings.DEBUG:
        # Queue depths and job counts are an operator's business: without a token to check,
        # nobody gets them (outside development).
        message = "Metrics are off: set METRICS_TOKEN, and send it as a bearer token."
        return JsonResponse(error_body("metrics_disabled", message), status=403)
    if settings.METRICS_TOKEN:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), settings.METRICS_TOKEN.encode()):
            return JsonResponse(error_body("not_authenticated", "Send the metrics token."), status=401)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    try:
        text = generate_latest(registry)
    except redis.RedisError as exc:
        return JsonResponse(error_body("metrics_unavailable", f"Redis is unavailable: {exc}"), status=503)
    return HttpResponse(text, content_type=CONTENT_TYPE_LATEST)


PROBES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class ProbeMiddleware:
    """Answers /healthz, /readyz and /metrics before Django's host check: load balancers,
    container healthchecks and Prometheus reach the process by its address or service name,
    which ALLOWED_HOSTS (the public names) rightly does not list. First in MIDDLEWARE."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path_info)
        return probe(request) if probe else self.get_response(request)
