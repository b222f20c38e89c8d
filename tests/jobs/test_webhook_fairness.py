"""Fair deliveries: a user's attempts under way are capped (WEBHOOK_CONCURRENCY_PER_USER), the
rest wait behind that user's own, and every other user's go past them."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Job, WebhookDelivery
from jobs.webhooks import outbox, transport
from tests.jobs.helpers import submit

pytestmark = pytest.mark.django_db

HUNG = transport.Outcome(error="no answer within 10 s", retryable=True)


@pytest.fixture
def queued(monkeypatch, sent):
    """Delivery tasks queued by the outbox: [(delivery id, countdown)]."""
    calls = []

    class Broker:
        def send_task(self, name, args=None, queue=None, countdown=None, **kwargs):
            calls.append((args[0], countdown))

    monkeypatch.setattr(outbox, "current_app", Broker())
    return calls


@pytest.fixture
def deliveries(allow_local, queued, settings, django_capture_on_commit_callbacks):
    """deliveries(client, n): ids of n pending `completed` deliveries of the client's user,
    oldest first, each due now, with nothing queued for them yet."""
    settings.WEBHOOK_CONCURRENCY_PER_USER = 2
    url = allow_local("http://127.0.0.1:9/hook")

    def make(client, count):
        ids = []
        for _ in range(count):
            job = Job.objects.get(pk=submit(client, webhook_url=url).json()["id"])
            with django_capture_on_commit_callbacks(execute=True):
                job.claim("w1@host")
                job.succeed({}, {}, 1, 1)
            ids.append(str(WebhookDelivery.objects.get(job=job).id))
        queued.clear()
        return ids

    return make


def test_past_their_limit_a_users_deliveries_wait_and_another_users_go_past(alice, bob, deliveries):
    alices, [bobs] = deliveries(alice, 5), deliveries(bob, 1)
    assert outbox._claim(alices[0]) and outbox._claim(alices[1])  # two attempts hang
    assert outbox._claim(alices[2]) is None  # a third waits behind alice's own
    assert WebhookDelivery.objects.get(pk=alices[2]).state == "pending"
    assert outbox._claim(bobs)  # bob's is not behind alice's


def test_an_attempt_that_ends_sends_its_owners_next_due_deliveries(alice, bob, deliveries, queued):
    alices = deliveries(alice, 5)
    deliveries(bob, 1)  # due as well, but not alice's slot to fill
    claims = [outbox._claim(delivery_id) for delivery_id in alices[:2]]
    first = WebhookDelivery.objects.get(pk=alices[0])
    outbox._record(first, claims[0], timezone.now(), HUNG)
    # Its own retry (a countdown), then alice's two oldest due; never bob's, nor one under way.
    assert queued == [(alices[0], 5), (alices[2], None), (alices[3], None)]
    assert outbox._claim(alices[2]) and outbox._claim(alices[3]) is None  # one slot was freed


def test_the_slot_of_a_killed_attempt_frees_when_its_lease_runs_out(alice, deliveries):
    alices = deliveries(alice, 3)
    assert outbox._claim(alices[0]) and outbox._claim(alices[1])
    assert outbox._claim(alices[2]) is None
    # The worker of the first attempt was killed: nobody records it, its lease ends.
    WebhookDelivery.objects.filter(pk=alices[0]).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert outbox._claim(alices[2])


def test_the_sweep_sends_each_user_their_oldest_due_only_as_many_as_they_may_run(
    alice, bob, deliveries, queued
):
    alices, [bobs] = deliveries(alice, 5), deliveries(bob, 1)
    assert outbox.dispatch_due() == 3
    assert sorted(delivery_id for delivery_id, _ in queued) == sorted([alices[0], alices[1], bobs])


@pytest.mark.django_db(transaction=True)
def test_two_claims_at_once_cannot_both_take_a_users_last_slot(alice, deliveries, monkeypatch, settings):
    """Both threads count the user's attempts under way before either has claimed: only the
    lock on the user's row makes the second count again after the first's commit."""
    [one, other] = deliveries(alice, 2)
    settings.WEBHOOK_CONCURRENCY_PER_USER = 1
    count = outbox._attempts_under_way

    def slow_count(owner_id):
        counted = count(owner_id)
        time.sleep(0.5)  # the other thread counts meanwhile
        return counted

    monkeypatch.setattr(outbox, "_attempts_under_way", slow_count)
    claims = {}

    def claim(delivery_id):
        try:
            claims[delivery_id] = outbox._claim(delivery_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(delivery_id,)) for delivery_id in (one, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claim is not None for claim in claims.values()) == [False, True]
