"""Backpressure: too many queued jobs, or too many requests, get 429 with Retry-After."""

import pytest

from jobs.api.throttling import AddressRateThrottle, TokenRateThrottle
from jobs.models import Job
from tests.jobs.helpers import assert_error, submit, upload

pytestmark = pytest.mark.django_db


def test_a_user_with_too_many_queued_jobs_gets_429_until_one_leaves_the_queue(alice, bob, sent, settings):
    settings.MAX_QUEUED_JOBS_PER_USER = 2
    first = submit(alice).json()["id"]
    assert submit(alice).status_code == 202
    response = submit(alice)
    assert_error(response, 429, "too_many_queued_jobs")
    assert response["Retry-After"] == "30" and Job.objects.count() == 2
    assert submit(bob).status_code == 202  # a per-user limit
    Job.objects.get(pk=first).cancel()
    assert submit(alice).status_code == 202


def test_a_full_service_queue_gets_429_for_everyone(alice, bob, sent, settings):
    settings.MAX_QUEUED_JOBS = 2
    submit(alice)
    submit(bob)
    assert_error(submit(alice), 429, "queue_full")
    assert_error(submit(bob), 429, "queue_full")


def test_a_retry_of_an_accepted_submit_is_never_refused(alice, sent, settings):
    settings.MAX_QUEUED_JOBS_PER_USER = 1
    post = lambda: alice.post(  # noqa: E731
        "/api/v1/jobs/", {"image": upload(), "task": "semantic"}, format="multipart", HTTP_IDEMPOTENCY_KEY="k"
    )
    assert post().status_code == 202
    assert post().status_code == 200


def test_the_compatible_endpoints_are_limited_too_in_their_own_shape(alice, sent, settings):
    settings.MAX_QUEUED_JOBS_PER_USER = 1
    submit(alice)
    response = alice.post("/model/predict", {"image": upload()}, format="multipart")
    assert response.status_code == 429 and response.json()["code"] == "too_many_queued_jobs"
    assert response.json()["status"] == "error" and response["Retry-After"] == "30"


def test_anonymous_clients_have_a_queue_cap_each_by_address(anonymous, sent, settings):
    settings.COMPAT_ALLOW_ANONYMOUS = True
    settings.COMPAT_TIMEOUT = 0  # 202 at once: the jobs stay queued
    settings.MAX_QUEUED_JOBS_PER_ADDRESS = 2
    settings.MAX_QUEUED_JOBS_PER_USER = 100

    def predict(address, forwarded=None):
        extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
        return anonymous.post(
            "/model/predict", {"image": upload()}, format="multipart", REMOTE_ADDR=address, **extra
        )

    assert [predict("198.51.100.1").status_code for _ in range(2)] == [202, 202]
    refused = predict("198.51.100.1")
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_queued_jobs"
    # No trusted proxy: a made-up X-Forwarded-For is not another client.
    assert predict("198.51.100.1", forwarded="203.0.113.9").status_code == 429
    # Another phone is not held up by the first one's jobs, though both are `compat-anonymous`.
    assert predict("198.51.100.2").status_code == 202
    assert sorted(Job.objects.values_list("client_address", flat=True)) == ["198.51.100.1"] * 2 + [
        "198.51.100.2"
    ]


def test_jobs_from_a_token_record_no_client_address(alice, sent):
    submit(alice)
    alice.post("/model/predict", {"image": upload()}, format="multipart")
    assert set(Job.objects.values_list("client_address", flat=True)) == {""}


def test_request_rates_are_throttled_per_user_and_per_address(alice, anonymous, monkeypatch, settings):
    settings.COMPAT_ALLOW_ANONYMOUS = True  # token-less requests elsewhere stop at 401 first
    monkeypatch.setattr(TokenRateThrottle, "rate", "3/min", raising=False)
    monkeypatch.setattr(AddressRateThrottle, "rate", "2/min", raising=False)
    assert [alice.get("/api/v1/jobs/").status_code for _ in range(4)] == [200, 200, 200, 429]
    throttled = alice.get("/api/v1/jobs/")
    assert_error(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) > 0
    assert [anonymous.get("/model/labels").status_code for _ in range(3)] == [200, 200, 429]
    other_address = [anonymous.get("/model/labels", REMOTE_ADDR="10.9.8.7").status_code for _ in range(2)]
    assert other_address == [200, 200]  # each anonymous client has its own bucket


def test_the_rate_counts_a_sliding_window_across_window_boundaries(alice, monkeypatch):
    clock = [6000.0]  # the start of a one-minute window
    monkeypatch.setattr(TokenRateThrottle, "rate", "3/min", raising=False)
    monkeypatch.setattr(TokenRateThrottle, "timer", lambda self: clock[0])

    def answers(count):
        return [alice.get("/api/v1/jobs/").status_code for _ in range(count)]

    def retry_after():
        throttled = alice.get("/api/v1/jobs/")
        assert throttled.status_code == 429
        return int(throttled["Retry-After"])

    assert answers(4) == [200, 200, 200, 429]
    assert retry_after() == 60  # the current window alone is full: until it ends
    clock[0] += 60  # the next window opens: the last minute's 3 still count in full...
    assert retry_after() == 1  # ...but start sliding out at once
    clock[0] += 1
    assert answers(1) == [200]
    clock[0] += 29  # half of the last minute has slid out: 1.5 + 1 counted
    assert answers(2) == [200, 429]
    assert retry_after() == 10  # 1.5 + 2 is one too many until a third of 3 slides out
    clock[0] += 150  # both windows are long past
    assert answers(4) == [200, 200, 200, 429]


def test_a_made_up_x_forwarded_for_does_not_make_a_fresh_address(anonymous, monkeypatch, settings):
    settings.COMPAT_ALLOW_ANONYMOUS = True
    monkeypatch.setattr(AddressRateThrottle, "rate", "2/min", raising=False)
    # No trusted proxy (the default): the header is the client's own words.
    statuses = [
        anonymous.get("/model/labels", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_behind_a_trusted_proxy_the_address_it_vouches_for_is_the_clients(anonymous, monkeypatch, settings):
    settings.COMPAT_ALLOW_ANONYMOUS = True
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}  # as TRUSTED_PROXIES=1 sets it
    monkeypatch.setattr(AddressRateThrottle, "rate", "2/min", raising=False)

    def via_proxy(client_address, spoofed=""):
        forwarded = f"{spoofed}, {client_address}" if spoofed else client_address
        return anonymous.get(
            "/model/labels", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded
        ).status_code

    # One client, lying in front of what the proxy appended: still one bucket.
    assert [via_proxy("198.51.100.7", spoofed=f"203.0.113.{i}") for i in range(3)] == [200, 200, 429]
    assert via_proxy("198.51.100.8") == 200  # another client behind the same proxy
