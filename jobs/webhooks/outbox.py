"""Deliveries: recorded with the job's status change, attempted by the webhooks worker.

1. A status change a job's webhook asks for writes a WebhookDelivery in the change's own
   transaction (a transactional outbox), so an event is never lost to a crash or a broker
   outage between the change and the send.
2. After the commit its id goes to the `webhooks` queue. A worker claims it with a
   conditional UPDATE, POSTs it, and records the attempt.
3. A failure that may pass is retried on WEBHOOK_RETRY_DELAYS. A short delay travels as a
   countdown; a long one is left to the beat sweep (dispatch_due), because Redis hands an
   unacknowledged message out again after its visibility timeout, and an ETA hours away
   would be redelivered again and again. The sweep also resends what a broker outage or a
   killed worker dropped.
4. A job's deliveries go out in event order: `completed` waits while `running` is pending.
   A batch's `batch.completed` is written by the transition of its last job to end
   (jobs/lifecycle/batches.py) and goes out on its own, whatever its jobs' deliveries do.
5. A user has at most WEBHOOK_CONCURRENCY_PER_USER attempts under way. A message for one of
   their deliveries past that claims nothing (in milliseconds), and the delivery waits behind
   the user's own: each of their attempts that ends sends their next due ones. So a user
   whose receiver never answers holds that many io threads, and everyone else's deliveries
   go past theirs instead of waiting hours behind them.

Due times are the database's clock (Now()), so web and worker clocks need not agree.
"""

import logging
import uuid
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Window
from django.db.models.functions import Now, RowNumber
from django.utils import timezone

from jobs.models import BATCH_COMPLETED, Job, WebhookAttempt, WebhookDelivery, WebhookSecret
from jobs.ops import metrics
from jobs.webhooks import transport
from jobs.webhooks.signing import signature_headers

log = logging.getLogger(__name__)

DELIVER_TASK = "jobs.tasks.deliver_webhook"
USER_AGENT = "segment-backend-webhooks/1"
# Retries due sooner than this are sent with a countdown; later ones by the beat sweep. Well
# under the broker's visibility timeout, past which Redis would hand the message out again.
COUNTDOWN_LIMIT = min(300, settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] // 2)
# A claimed attempt not recorded within its timeout plus this is presumed dead (its
# worker was killed) and becomes due again.
LEASE_MARGIN = 60
# A countdown may fire a little before the due time it was computed for.
EARLY_SLACK = timedelta(seconds=2)
PENDING = WebhookDelivery.State.PENDING


def event_of(status):
    if status == Job.Status.RUNNING:
        return "running"
    if status in Job.TERMINAL:
        return "completed"
    return None


def record_event(job):
    """Within a status change's transaction: the delivery its webhook asks for, if any."""
    event = event_of(job.status)
    if not job.webhook_url or event not in job.webhook_events:
        return

    def payload():
        from jobs.api.serializers import JobEventSerializer

        return _rendered(JobEventSerializer(job, context={"request": None}))

    # Once per job: a requeued job's second claim sends nothing.
    _record_delivery(event, job.webhook_url, job.owner_id, payload, job=job)


def record_batch_event(batch):
    """Within the transaction that finished the batch: its `batch.completed`, if asked for."""
    if not batch.webhook_url or BATCH_COMPLETED not in batch.webhook_events:
        return

    def payload():
        from jobs.api.batches import BatchEventSerializer

        return _rendered(BatchEventSerializer(batch, context={"request": None}))

    _record_delivery(BATCH_COMPLETED, batch.webhook_url, batch.owner_id, payload, batch=batch)


def _record_delivery(event, url, owner_id, payload, **subject):
    """The delivery of `event` for `subject` (job= or batch=), once, queued on commit."""
    try:
        with transaction.atomic():  # a savepoint: a failure here must not undo the change
            delivery, created = WebhookDelivery.objects.get_or_create(
                event=event,
                **subject,
                defaults={
                    "owner_id": owner_id,
                    "url": url,
                    "payload": payload(),
                    "next_attempt_at": timezone.now(),
                },
            )
    except Exception:
        # The change itself matters more than its notification: keep the change.
        [(kind, instance)] = subject.items()
        log.exception("could not record the %s webhook of %s %s", event, kind, instance.pk)
        return
    if created:
        transaction.on_commit(lambda: send(delivery.id))


def _rendered(serializer):
    from rest_framework.renderers import JSONRenderer

    return JSONRenderer().render(serializer.data).decode()


def send(delivery_id, countdown=None):
    """Queue an attempt. If the broker is down the delivery stays due for the sweep."""
    try:
        current_app.send_task(
            DELIVER_TASK, args=[str(delivery_id)], queue=settings.WEBHOOK_QUEUE, countdown=countdown
        )
    except Exception as exc:  # a broker outage, a full Redis: never the caller's failure
        log.warning("could not queue webhook delivery %s (the sweep will): %s", delivery_id, exc)


def deliver(delivery_id):
    """Make one attempt at a delivery if it is due and this call wins the claim."""
    claim = _claim(delivery_id)
    if claim is None:
        return None
    delivery = WebhookDelivery.objects.select_related("owner").get(pk=delivery_id)
    started = timezone.now()
    try:
        secrets = WebhookSecret.of(delivery.owner).signing_secrets(started)
        headers = {
            **signature_headers(str(delivery.id), delivery.payload, secrets, started),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        outcome = transport.post(delivery.url, delivery.payload.encode(), headers, settings.WEBHOOK_TIMEOUT)
    except Exception as exc:
        # Recorded like any failure, so the schedule still ends; never an endless loop of
        # unrecorded attempts.
        log.exception("webhook delivery %s failed unexpectedly", delivery.id)
        outcome = transport.Outcome(error=f"internal error: {type(exc).__name__}", retryable=True)
    _record(delivery, claim, started, outcome)
    return outcome


def _claim(delivery_id):
    """A token for one attempt if the delivery is due, in order, not claimed meanwhile, and
    its owner has a free slot (WEBHOOK_CONCURRENCY_PER_USER)."""
    owner_id = WebhookDelivery.objects.filter(pk=delivery_id).values_list("owner_id", flat=True).first()
    if owner_id is None:
        return None  # deleted with its job (or batch)
    token = uuid.uuid4()
    with transaction.atomic():
        # One claim of an owner's at a time (their user row's lock until this commits), or
        # two threads could both count a free slot and both take it.
        get_user_model().objects.select_for_update().filter(pk=owner_id).values_list("pk").first()
        if _attempts_under_way(owner_id) >= settings.WEBHOOK_CONCURRENCY_PER_USER:
            return None  # still due: the owner's next attempt to end sends it (_send_next_of_owner)
        claimed = (
            _due()
            .filter(pk=delivery_id, next_attempt_at__lte=Now() + EARLY_SLACK)
            .update(
                claim=token,
                next_attempt_at=Now() + timedelta(seconds=settings.WEBHOOK_TIMEOUT + LEASE_MARGIN),
            )
        )
    return token if claimed else None


def _attempts_under_way(owner_id):
    """How many of the owner's claims hold a lease that has not run out (a killed worker's has)."""
    return WebhookDelivery.objects.filter(
        owner_id=owner_id, state=PENDING, claim__isnull=False, next_attempt_at__gt=Now()
    ).count()


def _due():
    """Pending deliveries not held back by their job's pending `running` delivery (order)."""
    running_pending = WebhookDelivery.objects.filter(job=OuterRef("job"), event="running", state=PENDING)
    return WebhookDelivery.objects.filter(state=PENDING).exclude(
        Q(event="completed") & Exists(running_pending)
    )


def _record(delivery, claim, started, outcome):
    delays = settings.WEBHOOK_RETRY_DELAYS
    delay = None
    owner_id = delivery.owner_id
    with transaction.atomic():
        current = WebhookDelivery.objects.select_for_update().filter(pk=delivery.pk).first()
        if current is None:
            return  # deleted with its job meanwhile
        WebhookAttempt.objects.create(
            delivery=current,
            number=current.attempts.count() + 1,  # numbered under the row lock
            started_at=started,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            response_body=outcome.response_body,
            error=outcome.error,
        )
        if current.state != PENDING or current.claim != claim:
            # A later claim (a redelivery, or a sweep after our lease ran out) owns it now.
            metrics.webhook_attempt("stale")
            log.info(
                "webhook %s: a stale attempt ended (%s); state left alone", delivery.id, outcome.error or "ok"
            )
            return
        if outcome.delivered:
            current.state, current.next_attempt_at = WebhookDelivery.State.DELIVERED, None
        elif outcome.retryable and current.failures < len(delays):
            delay = delays[current.failures]
            current.next_attempt_at = Now() + timedelta(seconds=delay)
            current.failures += 1
        else:
            current.state, current.next_attempt_at = WebhookDelivery.State.FAILED, None
            current.failures += 1
        current.claim = None
        current.save(update_fields=["state", "next_attempt_at", "failures", "claim"])
        metrics.webhook_attempt("retrying" if delay is not None else current.state)
    delivery = current
    log.info(
        "webhook %s (%s of %s): %s %s",
        delivery.id,
        delivery.event,
        delivery.subject,
        outcome.status_code or outcome.error,
        f"retry in {delay} s" if delay is not None else delivery.state,
    )
    if delay is not None and delay <= COUNTDOWN_LIMIT:
        send(delivery.id, countdown=delay)
    _send_next_of_owner(owner_id)


def _send_next_of_owner(owner_id):
    """This attempt freed a slot of its owner's: send their oldest due deliveries, those left
    unclaimed while the owner had no slot and a `completed` this one held back (in order).
    As many as the owner may run: of two attempts ending at once, both would otherwise
    send the same one and leave a slot idle."""
    due = (
        _due()
        .filter(owner_id=owner_id, next_attempt_at__lte=Now())
        .order_by("next_attempt_at")
        .values_list("id", flat=True)
    )
    for delivery_id in due[: settings.WEBHOOK_CONCURRENCY_PER_USER]:
        send(delivery_id)


def dispatch_due(limit=1000):
    """Queue the pending deliveries that are due (the beat sweep); returns how many.

    Per owner only the oldest, as many as they may run (the rest follow as those end): a
    backlog of thousands of one user's must not fill the sweep and leave another user's
    lost message out of it.
    """
    oldest_first = Window(RowNumber(), partition_by=F("owner_id"), order_by=F("next_attempt_at").asc())
    due = list(
        _due()
        .filter(next_attempt_at__lte=Now())
        .annotate(place=oldest_first)
        .filter(place__lte=settings.WEBHOOK_CONCURRENCY_PER_USER)
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    for delivery_id in due:
        send(delivery_id)
    return len(due)


def redeliver(deliveries):
    """Send these deliveries again now, with a fresh retry schedule (same id and payload).

    One whose attempt is under way at this moment may then be attempted twice; receivers
    drop the duplicate by its webhook-id.
    """
    ids = [delivery.pk for delivery in deliveries]
    WebhookDelivery.objects.filter(pk__in=ids).update(
        state=PENDING, failures=0, next_attempt_at=timezone.now()
    )
    for delivery_id in ids:
        transaction.on_commit(lambda delivery_id=delivery_id: send(delivery_id))
    return len(ids)
