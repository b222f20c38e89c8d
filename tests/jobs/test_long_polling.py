"""Long polling: GET /api/v1/jobs/{id}/ with `?wait=N` or `Prefer: wait=N` answers once the job
has finished or N seconds have passed, on the submit's waiting machinery and limits."""

import threading
import time

import pytest

from jobs.lifecycle import waiting
from jobs.models import Job
from tests.jobs.helpers import assert_error, submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(alice, sent):
    job = Job.objects.get(pk=submit(alice).json()["id"])
    job.claim("w1@host")
    return job


def finish_after(job, seconds):
    """The worker's end of the job, `seconds` from now (it publishes on commit)."""
    timer = threading.Timer(seconds, lambda: Job.objects.get(pk=job.pk).fail("invalid_image", "broken"))
    timer.start()
    return timer


def timed_get(client, job, query="", **headers):
    started = time.monotonic()
    response = client.get(f"/api/v1/jobs/{job.pk}/{query}", **headers)
    return response, time.monotonic() - started


@pytest.mark.parametrize("query, headers", [("?wait=30", {}), ("", {"HTTP_PREFER": "wait=30"})])
def test_a_poll_that_waits_is_answered_as_soon_as_the_job_finishes(alice, running, query, headers):
    finish_after(running, 0.5)
    response, took = timed_get(alice, running, query, **headers)
    assert response.status_code == 200 and response.json()["status"] == "failed"
    assert 0.4 < took < 10
    if headers:
        assert response["Preference-Applied"] == "wait=30"


def test_a_poll_whose_wait_runs_out_answers_with_the_job_as_it_is(alice, running):
    response, took = timed_get(alice, running, "?wait=1")
    assert response.status_code == 200 and response.json()["status"] == "running"
    assert 1.0 <= took < 5


def test_a_cached_status_does_not_answer_a_poll_that_waits(alice, running):
    alice.get(f"/api/v1/jobs/{running.pk}/")  # fills the status cache
    finish_after(running, 0.5)
    response, took = timed_get(alice, running, HTTP_PREFER="wait=30")
    assert response.json()["status"] == "failed" and took > 0.4


def test_a_finished_job_is_answered_at_once(alice, running):
    Job.objects.get(pk=running.pk).fail("invalid_image", "broken")
    response, took = timed_get(alice, running, "?wait=30")
    assert response.json()["status"] == "failed" and took < 2


def test_another_users_job_is_404_at_once_holding_no_slot(bob, running):
    response, took = timed_get(bob, running, "?wait=30")
    assert_error(response, 404)
    assert took < 2


@pytest.mark.parametrize("query", ["?wait=61", "?wait=soon", "?wait=-1"])
def test_a_bad_wait_is_400(alice, running, query):
    assert_error(alice.get(f"/api/v1/jobs/{running.pk}/{query}"), 400, "invalid_wait")


def test_past_the_waiting_limit_a_poll_is_answered_at_once(alice, running, settings):
    settings.MAX_WAITING_REQUESTS = 0
    waiting._slots.cache_clear()  # the semaphore is sized once per process
    try:
        response, took = timed_get(alice, running, HTTP_PREFER="wait=30")
    finally:
        waiting._slots.cache_clear()
    assert response.status_code == 200 and "Preference-Applied" not in response and took < 2


def test_a_job_deleted_during_the_wait_is_404(alice, running):
    threading.Timer(0.5, lambda: Job.objects.get(pk=running.pk).delete()).start()
    response, _ = timed_get(alice, running, "?wait=2")
    assert_error(response, 404)


def test_waits_in_one_thread_share_one_redis_connection(alice, running, monkeypatch, settings):
    import redis

    from core.redis_clients import redis_client

    connects = []  # each connection, as the socket it opened says hello to Redis
    real_hello = redis.connection.AbstractConnection.on_connect_check_health
    monkeypatch.setattr(
        redis.connection.AbstractConnection,
        "on_connect_check_health",
        lambda self, *args, **kwargs: connects.append(self) or real_hello(self, *args, **kwargs),
    )
    waiting._drop_subscriber()  # this thread starts without one
    response, _ = timed_get(alice, running, "?wait=1")  # takes this thread's connection
    assert response.status_code == 200 and response.json()["status"] == "running"
    subscriber = waiting._subscriber()
    kept, connects[:] = subscriber.connection, []
    for _ in range(2):
        response, _ = timed_get(alice, running, "?wait=1")
        assert response.status_code == 200 and response.json()["status"] == "running"
    assert waiting._subscriber() is subscriber and subscriber.connection is kept
    assert not connects  # redis-py's PubSub.close() would have dropped it: a connect per wait
    # Each wait unsubscribed its job's channel: Redis holds no subscriber for it.
    assert redis_client(settings.REDIS_URL).pubsub_numsub(waiting.channel(running.pk))[0][1] == 0


def test_an_earlier_jobs_announcement_on_the_kept_connection_does_not_end_a_wait(alice, running, settings):
    from core.redis_clients import redis_client

    earlier = Job.objects.get(pk=submit(alice).json()["id"])
    subscriber = waiting._subscriber()
    subscriber.subscribe(waiting.channel(earlier.pk))  # as a wait that ended just as it was announced
    redis_client(settings.REDIS_URL).publish(waiting.channel(earlier.pk), "failed")
    started = time.monotonic()
    waiting.wait_until_finished(running.pk, 0.5)
    assert time.monotonic() - started >= 0.5  # not woken by the other job
    subscriber.unsubscribe(waiting.channel(earlier.pk))
