"""The API side of webhooks and waiting: fields, refusals, the account, `Prefer: wait`."""

import socket
import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from standardwebhooks import Webhook

from jobs.lifecycle import waiting
from jobs.models import Job
from tests.jobs.helpers import assert_error, submit

pytestmark = pytest.mark.django_db

PUBLIC = "https://93.184.216.34/hooks/segment"


def test_a_job_keeps_its_webhook_url_and_events(alice, sent):
    body = submit(alice, webhook_url=PUBLIC).json()
    assert body["webhook_url"] == PUBLIC and body["webhook_events"] == ["completed"]
    assert body["webhook_deliveries"] == []
    body = submit(alice, webhook_url=PUBLIC, webhook_events=["completed", "running", "running"]).json()
    assert body["webhook_events"] == ["running", "completed"]
    assert submit(alice).json()["webhook_url"] == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "file:///etc/passwd",
        "http://localhost:8000/admin/",
        "https://intranet.example.com/hook",
        "https://user:pw@93.184.216.34/",
        "not a url",
    ],
)
def test_refused_webhook_urls_are_400_and_create_no_job(alice, sent, fake_dns, url):
    fake_dns["intranet.example.com"] = "10.20.30.40"
    error = assert_error(submit(alice, webhook_url=url), 400, "invalid_webhook_url")
    assert error["message"].startswith("webhook_url: ")
    assert Job.objects.count() == 0 and sent.calls == []


def test_an_exempted_local_receiver_is_accepted_on_its_port_only(alice, sent, allow_local):
    assert submit(alice, webhook_url=allow_local("http://127.0.0.1:9000/hook")).status_code == 202
    error = assert_error(submit(alice, webhook_url="http://127.0.0.1:9001/hook"), 400, "invalid_webhook_url")
    assert error["message"].startswith("webhook_url: port 9001 is not allowed")


def test_a_name_that_does_not_resolve_and_one_that_resolves_privately_are_refused_alike(
    alice, sent, fake_dns
):
    fake_dns["hooks.example.com"] = "10.20.30.40"
    private = assert_error(
        submit(alice, webhook_url="https://hooks.example.com/h"), 400, "invalid_webhook_url"
    )
    missing = assert_error(
        submit(alice, webhook_url="https://hooks.nowhere.invalid/h"), 400, "invalid_webhook_url"
    )
    assert missing["message"] == private["message"].replace("hooks.example.com", "hooks.nowhere.invalid")
    assert private["message"] == (
        "webhook_url: hooks.example.com did not resolve to public addresses; webhooks go to public "
        "addresses only (an operator may exempt a host:port with WEBHOOK_ALLOWED_HOSTS)"
    )
    assert Job.objects.count() == 0


def test_a_lookup_past_its_deadline_is_refused_and_frees_the_web_thread(alice, sent, monkeypatch, settings):
    settings.WEBHOOK_DNS_TIMEOUT = 1
    released = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: released.wait(30))
    started = time.monotonic()
    try:
        response = submit(alice, webhook_url="https://slow.example.com/hook")
    finally:
        released.set()
    error = assert_error(response, 400, "invalid_webhook_url")
    assert error["message"].startswith("webhook_url: slow.example.com did not resolve to public addresses;")
    assert time.monotonic() - started < 3 and Job.objects.count() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"webhook_url": PUBLIC, "webhook_events": "finished"},
        {"webhook_url": PUBLIC, "webhook_events": ""},
        {"webhook_events": "completed"},  # events without a URL
    ],
)
def test_bad_webhook_fields_are_400(alice, sent, fields):
    assert_error(submit(alice, **fields), 400, "invalid_request")
    assert Job.objects.count() == 0


def test_the_account_shows_a_stable_secret_that_standard_webhooks_accepts(alice, bob):
    first = alice.get("/api/v1/account/").json()
    assert first["username"] == "alice" and first["webhook_secret"].startswith("whsec_")
    Webhook(first["webhook_secret"])  # a valid Standard Webhooks secret
    assert alice.get("/api/v1/account/").json() == first
    assert bob.get("/api/v1/account/").json()["webhook_secret"] != first["webhook_secret"]


def test_rotating_replaces_the_secret(alice):
    old = alice.get("/api/v1/account/").json()["webhook_secret"]
    response = alice.post("/api/v1/account/rotate-webhook-secret/")
    assert response.status_code == 200 and response.json()["webhook_secret"] != old
    assert alice.get("/api/v1/account/").json() == response.json()


def test_the_account_needs_a_token(anonymous):
    assert_error(anonymous.get("/api/v1/account/"), 401, "not_authenticated")
    assert_error(anonymous.post("/api/v1/account/rotate-webhook-secret/"), 401)
    assert_error(anonymous.get("/api/v1/account/rotate-webhook-secret/"), 401)


def post_job(client, query="", **headers):
    from tests.jobs.helpers import upload

    return client.post(
        f"/api/v1/jobs/{query}", {"image": upload(), "task": "semantic"}, format="multipart", **headers
    )


@pytest.fixture
def no_waiting_slots(settings):
    settings.MAX_WAITING_REQUESTS = 0
    waiting._slots.cache_clear()  # the semaphore is sized once per process
    yield
    waiting._slots.cache_clear()


@pytest.mark.parametrize(
    "headers, query",
    [
        ({"HTTP_PREFER": "wait=61"}, ""),
        ({"HTTP_PREFER": "wait=soon"}, ""),
        ({"HTTP_PREFER": "wait=\u00b2"}, ""),  # a superscript two: isdigit(), not int()
        ({}, "?wait=-1"),
        ({}, "?wait=1.5"),
        ({}, "?wait=%D9%A3"),  # an Arabic-Indic three
        ({}, "?wait=" + "9" * 5000),  # past int()'s digit limit
    ],
)
def test_a_bad_wait_is_400_before_anything_is_stored(alice, sent, headers, query):
    assert_error(post_job(alice, query, **headers), 400, "invalid_wait")
    assert Job.objects.count() == 0


def test_a_wait_that_runs_out_answers_202_with_the_job_in_progress(alice, sent):
    started = time.monotonic()
    response = post_job(alice, HTTP_PREFER="respond-async, wait=1")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert response["Preference-Applied"] == "wait=1"
    assert 1.0 <= time.monotonic() - started < 5


def test_past_the_waiting_limit_a_request_is_answered_at_once(alice, sent, no_waiting_slots):
    started = time.monotonic()
    response = post_job(alice, HTTP_PREFER="wait=30")
    assert response.status_code == 202 and "Preference-Applied" not in response
    assert time.monotonic() - started < 5


def wait_for_a_job_that_fails_after(alice, seconds):
    """(seconds waited, queries made, whether the connection was open when it returned)."""
    job = Job.objects.get(pk=submit(alice).json()["id"])
    job.claim("w1@host")

    def finish_soon():
        time.sleep(seconds)
        Job.objects.get(pk=job.pk).fail("invalid_image", "broken")  # publishes on commit

    threading.Thread(target=finish_soon).start()
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        waiting.wait_until_finished(job.id, 20)
        still_open = connection.connection is not None
    return time.monotonic() - started, len(queries), still_open


@pytest.mark.django_db(transaction=True)
def test_waiting_returns_when_the_job_finishes_without_polling(alice, sent):
    waited, queries, still_open = wait_for_a_job_that_fails_after(alice, 0.5)
    assert 0.4 < waited < 5
    assert queries == 1  # one look at the row, then no polling
    assert still_open  # a job this quick keeps its connection: no reconnect for the answer


@pytest.mark.django_db(transaction=True)
def test_a_long_wait_gives_its_database_connection_back(alice, sent, monkeypatch):
    monkeypatch.setattr(waiting, "HOLD_CONNECTION_SECONDS", 0.2)
    waited, queries, still_open = wait_for_a_job_that_fails_after(alice, 0.6)
    assert 0.5 < waited < 5 and queries == 1
    assert not still_open  # closed for the wait, not reopened


@pytest.mark.django_db(transaction=True)
def test_waiting_for_a_finished_job_returns_at_once(alice, sent):
    job = Job.objects.get(pk=submit(alice).json()["id"])
    job.cancel()
    started = time.monotonic()
    waiting.wait_until_finished(job.id, 20)
    assert time.monotonic() - started < 1
