"""/healthz, /readyz and /metrics, against the test database and the test Redis."""

import pytest
import redis
from django.db import OperationalError

from core import redis_keys, serving
from jobs.lifecycle.resolver import default_models
from jobs.models import Job
from jobs.ops import health, metrics
from tests.conftest import light_specs
from tests.jobs.helpers import submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def test_redis(settings):
    """A Redis database of its own: the e2e suite's workers, still up, announce themselves
    in the test database every few seconds."""
    settings.REDIS_URL = settings.REDIS_URL.rsplit("/", 1)[0] + "/11"
    client = redis.Redis.from_url(settings.REDIS_URL)
    for pattern in (f"{redis_keys.SERVING}*", "segment:metrics:*"):
        for key in client.scan_iter(match=pattern):
            client.delete(key)
    serving.forget()
    return client


def test_healthz_answers_without_a_token(anonymous):
    response = anonymous.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_503_until_a_worker_serves_a_model_of_every_task(anonymous, test_redis, served_models):
    response = anonymous.get("/readyz")
    body = response.json()
    assert response.status_code == 503 and body["status"] == "not_ready"
    assert body["checks"]["database"] == {"ok": True} and body["checks"]["broker"] == {"ok": True}
    assert all(model["workers"] == 0 for model in body["checks"]["models"].values())

    served_models(light_specs(), worker="light-1@host")
    health.forget_readiness()
    response = anonymous.get("/readyz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ready"
    required = {name for name, model in body["checks"]["models"].items() if model["required"]}
    assert required == set(default_models().values())
    assert {body["checks"]["models"][name]["task"] for name in required} == {"semantic", "instance", "matte"}
    assert all(body["checks"]["models"][name]["workers"] == 1 for name in required)
    assert "light-1@host" not in response.content.decode()  # no host names for anyone who asks
    assert body["checks"]["models"]["mask_rcnn_coco"] == {
        "task": "instance",
        "workers": 0,
        "required": False,
    }


def test_readyz_is_503_while_a_task_has_no_served_model(anonymous, test_redis, served_models):
    served_models([spec for spec in light_specs() if spec.task != "matte"], worker="light-1@host")
    body = anonymous.get("/readyz").json()
    assert body["status"] == "not_ready"
    assert body["checks"]["models"]["selfie_segmentation_mediapipe"] == {
        "task": "matte",
        "workers": 0,
        "required": True,
    }


def test_readyz_names_the_failed_check(anonymous, test_redis, monkeypatch, served_models):
    served_models(light_specs(), worker="light-1@host")

    def unreachable():
        raise OperationalError('connection to server at "db-7.internal" (10.0.3.7), port 5432 failed')

    monkeypatch.setattr(health.connection, "cursor", unreachable)
    response = anonymous.get("/readyz")
    body = response.json()
    assert body["status"] == "not_ready" and body["checks"]["database"] == {
        "ok": False,
        "code": "database_unavailable",
    }
    assert "internal" not in response.content.decode() and "10.0.3.7" not in response.content.decode()


def test_readyz_answers_a_flood_of_probes_from_one_evaluation(
    anonymous, test_redis, monkeypatch, served_models
):
    served_models(light_specs(), worker="light-1@host")
    evaluations = []
    evaluate = health._evaluate_readiness
    monkeypatch.setattr(health, "_evaluate_readiness", lambda: evaluations.append(1) or evaluate())
    answers = {anonymous.get("/readyz").status_code for _ in range(50)}
    assert answers == {200} and len(evaluations) == 1
    health.forget_readiness()
    anonymous.get("/readyz")
    assert len(evaluations) == 2


def test_an_announcement_expires_with_the_process_that_stopped_renewing_it(test_redis):
    key = serving.publish("gone@host", [], pid=1)
    assert 0 < test_redis.ttl(key) <= serving.TTL_SECONDS


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = "s3cret"
    return {"HTTP_AUTHORIZATION": "Bearer s3cret"}


def test_metrics_count_jobs_and_time_the_succeeded_ones(
    alice, anonymous, sent, test_redis, served_models, django_capture_on_commit_callbacks, metrics_token
):
    served_models(light_specs())
    with django_capture_on_commit_callbacks(execute=True):
        done, canceled = (Job.objects.get(pk=submit(alice).json()["id"]) for _ in range(2))
        done.claim("w@host")
        done.succeed({}, {}, inference_ms=180, rendering_ms=5)
        canceled.cancel()
    text = anonymous.get("/metrics", **metrics_token).content.decode()
    model = done.model
    assert f'segment_jobs_created_total{{model="{model}"}} 2.0' in text
    assert f'segment_jobs_finished_total{{model="{model}",status="succeeded"}} 1.0' in text
    assert f'segment_jobs_finished_total{{model="{model}",status="canceled"}} 1.0' in text
    assert f'segment_job_inference_seconds_bucket{{le="0.1",model="{model}"}} 0.0' in text
    assert f'segment_job_inference_seconds_bucket{{le="0.25",model="{model}"}} 1.0' in text
    assert f'segment_job_inference_seconds_sum{{model="{model}"}} 0.18' in text
    assert 'segment_queue_depth{queue="light"}' in text


def test_metrics_want_the_token_when_one_is_set(anonymous, test_redis, metrics_token):
    assert anonymous.get("/metrics").status_code == 401
    assert anonymous.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert anonymous.get("/metrics", **metrics_token).status_code == 200


def test_metrics_are_closed_without_a_token_unless_debug(anonymous, settings, test_redis):
    settings.METRICS_TOKEN = ""
    response = anonymous.get("/metrics")
    assert response.status_code == 403 and response.json()["error"]["code"] == "metrics_disabled"
    settings.DEBUG = True
    assert anonymous.get("/metrics").status_code == 200


def test_a_metric_that_cannot_be_written_never_fails_the_job(
    alice, sent, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(metrics, "redis_client", lambda url: redis.Redis(port=1))  # nothing listens
    with django_capture_on_commit_callbacks(execute=True):
        job = Job.objects.get(pk=submit(alice).json()["id"])
        assert job.cancel()
    assert Job.objects.get(pk=job.pk).status == "canceled"


def test_probes_answer_whatever_host_they_are_reached_by(anonymous, test_redis, metrics_token):
    # A container healthcheck or Prometheus uses the address or service name, not a public host.
    assert anonymous.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert anonymous.get("/metrics", HTTP_HOST="web:8000", **metrics_token).status_code == 200
    assert anonymous.get("/api/v1/models/", HTTP_HOST="web:8000").status_code == 400  # the rest is checked
    assert anonymous.head("/healthz").status_code == 200
