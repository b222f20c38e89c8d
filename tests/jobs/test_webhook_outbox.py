"""Deliveries: made with the status change, attempted, retried on schedule, recorded, in order.

Real local receivers over HTTP; the broker is recorded (the `sent` fixture) so each test
drives every attempt itself.
"""

import importlib
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from jobs.models import Job, WebhookDelivery, new_webhook_secret
from jobs.webhooks import outbox
from tests.jobs.helpers import submit
from tests.tls import write_self_signed

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch, sent):
    """Delivery tasks queued by the outbox: [(delivery id, countdown)]."""
    calls = []

    class Broker:
        def send_task(self, name, args=None, queue=None, countdown=None, **kwargs):
            assert name == "jobs.tasks.deliver_webhook" and queue == "webhooks"
            calls.append((args[0], countdown))

    monkeypatch.setattr(outbox, "current_app", Broker())
    return calls


@pytest.fixture
def make_job(alice, allow_local, queued, django_capture_on_commit_callbacks):
    def make(url, events=None):
        fields = {"webhook_url": url} | ({"webhook_events": events} if events else {})
        with django_capture_on_commit_callbacks(execute=True):
            return Job.objects.get(pk=submit(alice, **fields).json()["id"])

    return make


def pointed_at(job, url):
    """The job with its webhook URL changed behind the API's back: for a URL whose host the
    submit-time check could not resolve (a TLS test's name), checked here at attempt time
    only (checked_to_localhost)."""
    Job.objects.filter(pk=job.pk).update(webhook_url=url)
    job.refresh_from_db()
    return job


def finish(job, django_capture_on_commit_callbacks, outcome="succeed"):
    with django_capture_on_commit_callbacks(execute=True):
        job.claim("w1@host")
        if outcome == "succeed":
            job.succeed({"image_size": [64, 48]}, {"mask": "mask.png"}, 10, 5)
        else:
            job.cancel()


def deliver_due(queued, django_capture_on_commit_callbacks):
    """Run the queued delivery tasks once, as the webhooks worker would."""
    pending, queued[:] = list(queued), []
    with django_capture_on_commit_callbacks(execute=True):
        return [outbox.deliver(delivery_id) for delivery_id, _ in pending]


def test_a_finished_job_gets_one_completed_delivery_queued(
    make_job, receiver, queued, django_capture_on_commit_callbacks
):
    job = make_job(receiver().url)
    assert job.webhook_events == ["completed"] and queued == []
    finish(job, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(job=job)
    assert delivery.event == "completed" and delivery.state == "pending"
    assert queued == [(str(delivery.id), None)]


def test_the_payload_is_the_job_as_the_api_shows_it(
    alice, make_job, receiver, django_capture_on_commit_callbacks, settings
):
    settings.PUBLIC_BASE_URL = "https://segment.example.com"
    job = make_job(receiver().url)
    finish(job, django_capture_on_commit_callbacks)
    payload = json.loads(WebhookDelivery.objects.get(job=job).payload)
    shown = alice.get(f"/api/v1/jobs/{job.id}/").json()
    assert set(payload) == set(shown) - {"webhook_deliveries"}
    for field in ("id", "status", "task", "model", "timings", "attempts", "webhook_url", "webhook_events"):
        assert payload[field] == shown[field], field
    assert payload["status"] == "succeeded"
    assert payload["url"] == f"https://segment.example.com/api/v1/jobs/{job.id}/"
    assert payload["result"]["files"]["mask"].startswith(
        f"https://segment.example.com/api/v1/jobs/{job.id}/files/mask.png?token="
    )


def test_running_and_completed_are_separate_deliveries_made_once(
    make_job, receiver, django_capture_on_commit_callbacks
):
    job = make_job(receiver().url, "completed,running")
    assert job.webhook_events == ["running", "completed"]
    with django_capture_on_commit_callbacks(execute=True):
        job.claim("w1@host")
        job.requeue()
        job.claim("w2@host")  # a second attempt is not a second "running" event
        job.cancel()
    events = [(d.event, json.loads(d.payload)["status"]) for d in WebhookDelivery.objects.filter(job=job)]
    assert events == [("running", "running"), ("completed", "canceled")]


def test_a_job_without_a_webhook_gets_no_delivery(alice, sent, django_capture_on_commit_callbacks):
    job = Job.objects.get(pk=submit(alice).json()["id"])
    finish(job, django_capture_on_commit_callbacks)
    assert not WebhookDelivery.objects.exists()


def test_a_delivery_is_signed_for_the_owners_secret(
    alice, make_job, receiver, queued, django_capture_on_commit_callbacks
):
    hooks = receiver([200])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    deliver_due(queued, django_capture_on_commit_callbacks)
    _, headers, body = hooks.requests[0]
    secret = alice.get("/api/v1/account/").json()["webhook_secret"]
    assert Webhook(secret).verify(body, headers)["id"] == str(job.id)
    assert headers["webhook-id"] == str(WebhookDelivery.objects.get(job=job).id)
    assert headers["Content-Type"] == "application/json"
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(new_webhook_secret()).verify(body, headers)  # another account's secret


def test_failures_are_retried_on_schedule_until_delivered(
    make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_DELAYS = [0, 0, 0]
    hooks = receiver([500, 503, 200])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    for _ in range(3):
        deliver_due(queued, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(job=job)
    assert delivery.state == "delivered" and delivery.next_attempt_at is None
    assert [(a.number, a.status_code) for a in delivery.attempts.all()] == [(1, 500), (2, 503), (3, 200)]
    assert len({r[1]["webhook-id"] for r in hooks.requests}) == 1  # one message, three attempts
    assert queued == []


def test_a_retry_waits_for_its_delay(
    make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_DELAYS = [60]
    hooks = receiver([500, 200])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    deliver_due(queued, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(job=job)
    assert queued == [(str(delivery.id), 60)]
    assert deliver_due(queued, django_capture_on_commit_callbacks) == [None]  # too early: nothing sent
    assert len(hooks.requests) == 1
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    queued.append((str(delivery.id), None))
    assert deliver_due(queued, django_capture_on_commit_callbacks)[0].delivered


def test_a_long_delay_is_left_to_the_sweep(
    make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_DELAYS = [3600]
    job = make_job(receiver([500]).url)
    finish(job, django_capture_on_commit_callbacks)
    deliver_due(queued, django_capture_on_commit_callbacks)
    assert queued == []  # no hour-long countdown on the broker
    assert outbox.dispatch_due() == 0
    WebhookDelivery.objects.filter(job=job).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert outbox.dispatch_due() == 1 and len(queued) == 1


def first_retry_after(delay, make_job, receiver, queued, settings, django_capture_on_commit_callbacks):
    """What one failed attempt with this retry delay queues: [(delivery id, countdown)], or
    [] where the retry is left to the sweep."""
    settings.WEBHOOK_RETRY_DELAYS = [delay]
    job = make_job(receiver([503]).url)
    finish(job, django_capture_on_commit_callbacks)
    deliver_due(queued, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(job=job)
    assert delivery.state == "pending" and delivery.failures == 1  # a retry is due either way
    return [(delivery_id == str(delivery.id), countdown) for delivery_id, countdown in queued]


# The countdown limit is 300 s at the default settings: the schedule's five-minute retry
# rides on the broker and goes out on time; anything later waits in the database for the
# sweep. Both sides of the boundary, so that moving the limit either way fails a test.
def test_a_retry_due_at_the_countdown_limit_goes_by_countdown(
    make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    args = (make_job, receiver, queued, settings, django_capture_on_commit_callbacks)
    assert first_retry_after(300, *args) == [(True, 300)]


def test_a_retry_due_a_second_past_the_countdown_limit_is_left_to_the_sweep(
    make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    args = (make_job, receiver, queued, settings, django_capture_on_commit_callbacks)
    assert first_retry_after(301, *args) == []
    assert outbox.dispatch_due() == 0  # not lost either: the sweep sends it when it is due
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    assert outbox.dispatch_due() == 1 and len(queued) == 1


@pytest.fixture
def visibility_timeout(settings):
    """set(seconds): the broker's visibility timeout, and the outbox's countdown limit
    derived from it again (the module computes it at import)."""
    original = settings.CELERY_BROKER_TRANSPORT_OPTIONS

    def reload_outbox():
        app = outbox.current_app  # the test's recorded broker, which a reload would replace
        importlib.reload(outbox)
        outbox.current_app = app

    def set_timeout(seconds):
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**original, "visibility_timeout": seconds}
        reload_outbox()

    yield set_timeout
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = original
    reload_outbox()


@pytest.mark.parametrize("delay, countdown", [(60, 60), (61, None)])
def test_no_countdown_is_longer_than_half_the_brokers_visibility_timeout(
    visibility_timeout,
    make_job,
    receiver,
    queued,
    settings,
    django_capture_on_commit_callbacks,
    delay,
    countdown,
):
    # Redis hands an unacknowledged message out again after its visibility timeout; a
    # countdown near it would be redelivered while it still waits. With a 2-minute timeout
    # the limit falls to 60 s: 60 still goes by countdown, 61 to the sweep.
    visibility_timeout(120)
    args = (make_job, receiver, queued, settings, django_capture_on_commit_callbacks)
    assert first_retry_after(delay, *args) == ([(True, countdown)] if countdown else [])


def test_a_4xx_fails_the_delivery_at_once(make_job, receiver, queued, django_capture_on_commit_callbacks):
    hooks = receiver([404])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    deliver_due(queued, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(job=job)
    assert delivery.state == "failed" and delivery.attempts.count() == 1 and queued == []


def test_a_delivery_gives_up_when_its_schedule_runs_out(
    make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_DELAYS = [0, 0]
    hooks = receiver([500])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    for _ in range(5):
        deliver_due(queued, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(job=job)
    assert delivery.state == "failed" and delivery.attempts.count() == 3 and len(hooks.requests) == 3


def test_completed_waits_for_a_pending_running_delivery(
    make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_DELAYS = [0]
    hooks = receiver([500, 200, 200])
    job = make_job(hooks.url, "running,completed")
    finish(job, django_capture_on_commit_callbacks)
    running, completed = WebhookDelivery.objects.filter(job=job)
    assert [d for d, _ in queued] == [str(running.id), str(completed.id)]
    deliver_due(queued, django_capture_on_commit_callbacks)  # running fails once; completed must wait
    assert [json.loads(body)["status"] for _, _, body in hooks.requests] == ["running"]
    deliver_due(queued, django_capture_on_commit_callbacks)  # running delivered, which sends completed
    deliver_due(queued, django_capture_on_commit_callbacks)
    assert [json.loads(body)["status"] for _, _, body in hooks.requests] == [
        "running",
        "running",
        "succeeded",
    ]
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_a_duplicate_message_makes_no_second_attempt(
    make_job, receiver, queued, django_capture_on_commit_callbacks
):
    hooks = receiver([200])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    queued.append(queued[0])  # the sweep and the first send raced
    deliver_due(queued, django_capture_on_commit_callbacks)
    assert len(hooks.requests) == 1


def test_a_rotated_secret_signs_alongside_the_old_one_for_the_grace_period(
    alice, make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    old = alice.get("/api/v1/account/").json()["webhook_secret"]
    new = alice.post("/api/v1/account/rotate-webhook-secret/").json()["webhook_secret"]
    assert new != old and new.startswith("whsec_")
    hooks = receiver([200])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    deliver_due(queued, django_capture_on_commit_callbacks)
    _, headers, body = hooks.requests[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(body, headers) and Webhook(new).verify(body, headers)
    settings.WEBHOOK_SECRET_GRACE = 0
    outbox.redeliver(WebhookDelivery.objects.filter(job=job))
    queued.append((str(WebhookDelivery.objects.get(job=job).id), None))
    deliver_due(queued, django_capture_on_commit_callbacks)
    assert len(hooks.requests[-1][1]["webhook-signature"].split(" ")) == 1


def test_redelivery_sends_the_same_message_again(
    make_job, receiver, queued, django_capture_on_commit_callbacks
):
    hooks = receiver([200])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    deliver_due(queued, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.redeliver(WebhookDelivery.objects.filter(job=job)) == 1
    deliver_due(queued, django_capture_on_commit_callbacks)
    first, second = hooks.requests
    assert first[2] == second[2] and first[1]["webhook-id"] == second[1]["webhook-id"]
    assert WebhookDelivery.objects.get(job=job).attempts.count() == 2


def test_a_delivery_of_a_deleted_job_is_dropped(
    make_job, receiver, queued, django_capture_on_commit_callbacks
):
    hooks = receiver([200])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    job.delete()
    assert deliver_due(queued, django_capture_on_commit_callbacks) == [None] and hooks.requests == []


def test_a_submit_the_broker_refused_notifies_nobody(
    alice, allow_local, receiver, sent, django_capture_on_commit_callbacks
):
    # The client was answered 503 and will submit again: there is no job to report on.
    sent.fail = True
    with django_capture_on_commit_callbacks(execute=True):
        assert submit(alice, webhook_url=receiver().url).status_code == 503
    assert not Job.objects.exists() and not WebhookDelivery.objects.exists()


def test_a_stale_attempt_cannot_undo_a_later_ones_result(
    make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    from jobs.webhooks import transport

    hooks = receiver([200])
    job = make_job(hooks.url)
    finish(job, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(job=job)
    stale_claim = outbox._claim(delivery.id)  # attempt A hangs past its lease...
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    deliver_due(queued, django_capture_on_commit_callbacks)  # ...B is sent and delivered
    outbox._record(
        delivery, stale_claim, timezone.now(), transport.Outcome(error="no answer", retryable=True)
    )
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.next_attempt_at is None
    assert [(a.number, a.error) for a in delivery.attempts.all()] == [(1, ""), (2, "no answer")]


def test_the_sweep_skips_completed_deliveries_held_back_by_their_running_one(
    make_job, receiver, queued, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_RETRY_DELAYS = [3600]
    job = make_job(receiver([500]).url, "running,completed")
    finish(job, django_capture_on_commit_callbacks)
    running, completed = WebhookDelivery.objects.filter(job=job)
    queued.clear()
    assert outbox.dispatch_due() == 1 and queued == [(str(running.id), None)]  # not completed


def test_an_unexpected_error_in_an_attempt_is_recorded_and_the_schedule_still_ends(
    make_job, receiver, queued, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from jobs.webhooks import transport

    settings.WEBHOOK_RETRY_DELAYS = [0]
    job = make_job(receiver([200]).url)
    finish(job, django_capture_on_commit_callbacks)

    def explode(*args, **kwargs):
        raise UnicodeEncodeError("latin-1", "例", 0, 1, "not encodable")

    monkeypatch.setattr(transport, "post", explode)
    for _ in range(3):
        deliver_due(queued, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(job=job)
    assert delivery.state == "failed"
    assert [a.error for a in delivery.attempts.all()] == ["internal error: UnicodeEncodeError"] * 2


def test_a_delivery_over_https_to_a_trusted_receiver_is_signed_and_delivered(
    alice,
    make_job,
    receiver,
    checked_to_localhost,
    issued,
    https_receiver,
    queued,
    django_capture_on_commit_callbacks,
):
    hooks = https_receiver(issued("hooks.test"), [200])
    job = pointed_at(make_job(receiver().url), f"https://hooks.test:{hooks.port}/hooks/segment")
    finish(job, django_capture_on_commit_callbacks)
    deliver_due(queued, django_capture_on_commit_callbacks)
    assert WebhookDelivery.objects.get(job=job).state == "delivered"
    _, headers, body = hooks.requests[0]
    secret = alice.get("/api/v1/account/").json()["webhook_secret"]
    assert Webhook(secret).verify(body, headers)["id"] == str(job.id)


def test_a_delivery_to_a_receiver_with_a_self_signed_certificate_is_retried_and_sends_nothing(
    make_job,
    receiver,
    checked_to_localhost,
    test_ca,
    https_receiver,
    queued,
    settings,
    tmp_path,
    django_capture_on_commit_callbacks,
):
    settings.WEBHOOK_RETRY_DELAYS = [5]
    hooks = https_receiver(write_self_signed("hooks.test", tmp_path))
    job = pointed_at(make_job(receiver().url), f"https://hooks.test:{hooks.port}/hooks/segment")
    finish(job, django_capture_on_commit_callbacks)
    deliver_due(queued, django_capture_on_commit_callbacks)
    delivery = WebhookDelivery.objects.get(job=job)
    assert delivery.state == "pending" and queued == [(str(delivery.id), 5)]
    (attempt,) = delivery.attempts.all()
    assert attempt.status_code is None and "certificate verify failed" in attempt.error
    assert hooks.requests == []  # the signed payload never left
