"""Cached status reads: the same answer as a full read, never stale, never another's."""

import socket
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from jobs.api import readcache
from jobs.api.throttling import TokenRateThrottle
from jobs.api.views import JobViewSet
from jobs.models import Job
from tests.conftest import clear_cache
from tests.jobs.helpers import assert_error, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(alice, sent):
    return Job.objects.get(pk=submit(alice).json()["id"])


def read(client, job, **extra):
    """(response, number of SQL queries it took)."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/api/v1/jobs/{job.pk}/", **extra)
    return response, len(queries)


def cached(client, job):
    """Read twice: the first read fills the cache, the second must come from it."""
    read(client, job)
    response, queries = read(client, job)
    assert queries == 0, "the second read went to the database"
    return response


def test_a_second_read_comes_from_the_cache_with_the_same_bytes_and_headers(alice, job):
    full, queries = read(alice, job)
    again = cached(alice, job)
    assert queries >= 2
    assert again.content == full.content
    assert dict(again.headers) == dict(full.headers)


def test_every_write_to_the_job_shows_in_the_next_read(alice, job):
    cached(alice, job)
    writes = [
        (lambda: job.claim("worker@host"), ("running", "decoding")),
        (lambda: job.advance(Job.Stage.INFERRING), ("running", "inferring")),
        (lambda: job.succeed({"classes": []}, {"mask": "mask.png"}, 5, 6), ("succeeded", None)),
    ]
    for write, (status, progress) in writes:
        write()
        body = read(alice, job)[0].json()
        assert (body["status"], body["progress"]) == (status, progress)
        cached(alice, job)
    job.input_name = "renamed.png"  # an operator's edit in the admin
    job.save()
    assert read(alice, job)[0].json()["input"]["filename"] == "renamed.png"


def test_a_read_that_raced_a_write_is_never_served(alice, job, monkeypatch):
    read_the_row = JobViewSet.get_object

    def read_then_a_worker_claims(view):
        row = read_the_row(view)
        Job.objects.get(pk=job.pk).claim("worker@host")  # between the read and the caching
        return row

    monkeypatch.setattr(JobViewSet, "get_object", read_then_a_worker_claims)
    assert read(alice, job)[0].json()["status"] == "queued"
    monkeypatch.undo()
    assert read(alice, job)[0].json()["status"] == "running"


def test_another_user_or_no_token_never_gets_the_cached_job(alice, bob, anonymous, job):
    cached(alice, job)
    assert_error(bob.get(f"/api/v1/jobs/{job.pk}/"), 404, "not_found")
    assert anonymous.get(f"/api/v1/jobs/{job.pk}/").status_code == 401
    anonymous.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert anonymous.get(f"/api/v1/jobs/{job.pk}/").status_code == 401


def test_a_user_whose_token_is_cached_still_never_gets_anothers_cached_job(alice, bob, job):
    """Bob's own read puts his token in the cache: the entry's owner is then all that stands
    between him and alice's cached job."""
    cached(bob, Job.objects.get(pk=submit(bob).json()["id"]))
    cached(alice, job)
    response, queries = read(bob, job)
    assert_error(response, 404, "not_found")
    assert queries > 0, "answered from the cache"


def test_a_deactivated_user_is_refused_at_once_and_reads_again_once_reactivated(alice, job):
    cached(alice, job)
    alice.user.is_active = False
    alice.user.save()
    assert read(alice, job)[0].status_code == 401
    alice.user.is_active = True
    alice.user.save()
    assert read(alice, job)[0].status_code == 200


def test_a_deleted_token_is_refused_at_once(alice, job):
    cached(alice, job)
    Token.objects.filter(user=alice.user).delete()
    assert read(alice, job)[0].status_code == 401


@pytest.mark.parametrize("revoke", ["delete the token", "deactivate the user"])
def test_a_token_revoked_while_a_read_is_in_flight_is_not_cached_again(alice, job, monkeypatch, revoke):
    read_the_row = JobViewSet.get_object

    def read_then_revoke(view):
        row = read_the_row(view)  # authenticated already: this read will answer 200
        if revoke == "delete the token":
            Token.objects.filter(user=alice.user).delete()
        else:
            alice.user.is_active = False
            alice.user.save()
        return row

    monkeypatch.setattr(JobViewSet, "get_object", read_then_revoke)
    assert read(alice, job)[0].status_code == 200
    monkeypatch.undo()
    assert read(alice, job)[0].status_code == 401


def test_a_hung_redis_costs_one_short_timeout_then_is_left_alone(alice, job, settings):
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    try:
        started = time.monotonic()
        first = read(alice, job)
        first_took = time.monotonic() - started
        started = time.monotonic()
        others = [read(alice, job) for _ in range(5)]
        others_took = time.monotonic() - started
    finally:
        silent.close()
    assert {response.status_code for response, _ in [first, *others]} == {200}
    assert first_took < 1.5  # one quarter-second timeout, not redis-py's retries
    assert others_took < 1.0  # Redis is left alone for a while after the error


def test_other_accept_headers_go_the_normal_way(alice, job):
    cached(alice, job)
    assert read(alice, job, HTTP_ACCEPT="text/html")[0].status_code == 406
    assert read(alice, job, HTTP_ACCEPT="application/json")[1] == 0


def test_a_deleted_job_is_not_found_at_once(alice, job):
    cached(alice, job)
    assert alice.delete(f"/api/v1/jobs/{job.pk}/").status_code == 204
    assert_error(read(alice, job)[0], 404, "not_found")


def test_a_job_with_a_webhook_is_always_read_from_the_database(alice, job):
    # Its deliveries change without a write to the job.
    Job.objects.filter(pk=job.pk).update(webhook_url="https://hooks.example.com/segment")
    read(alice, job)
    assert read(alice, job)[1] > 0


def test_cached_reads_count_against_the_request_rate(alice, job, monkeypatch):
    cached(alice, job)
    clear_cache()  # the request counts so far
    monkeypatch.setattr(TokenRateThrottle, "rate", "3/min", raising=False)
    answers = [read(alice, job)[0].status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


def test_each_host_gets_its_own_urls_and_a_host_not_allowed_gets_400(alice, job):
    cached(alice, job)
    other = read(alice, job, HTTP_HOST="localhost")[0].json()
    assert other["url"].startswith("http://localhost/")
    assert read(alice, job, HTTP_HOST="attacker.example")[0].status_code == 400


def test_reads_still_work_when_redis_is_down(alice, job, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    first, second = read(alice, job), read(alice, job)
    assert first[0].status_code == second[0].status_code == 200
    assert second[1] > 0


def test_setting_the_cache_time_to_zero_turns_it_off(alice, job, settings):
    settings.STATUS_CACHE_SECONDS = 0
    read(alice, job)
    assert read(alice, job)[1] > 0
    assert readcache.generation(job.pk) is None
