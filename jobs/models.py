"""The Job: one uploaded image to segment, its lifecycle and its results.

The row is the API contract: clients poll it, workers claim and finish it. Every status
change is a conditional UPDATE on the status it expects, so two actors racing (a cancel
and a finishing worker, a redelivered message and the first delivery) cannot both win.
"""

import logging
import secrets
import uuid
from base64 import b64encode

from django.conf import settings
from django.db import DatabaseError, models, transaction
from django.db.models import Q
from django.utils import timezone

from core.specs import JOB_TASKS

log = logging.getLogger(__name__)

# Webhook events a job may ask for; `completed` covers succeeded, failed and canceled.
WEBHOOK_EVENTS = ("running", "completed")
# A batch's own: every one of its jobs has ended (jobs/lifecycle/batches.py).
BATCH_COMPLETED = "batch.completed"
BATCH_WEBHOOK_EVENTS = (BATCH_COMPLETED,)
# Every event a delivery may carry.
DELIVERY_EVENTS = WEBHOOK_EVENTS + BATCH_WEBHOOK_EVENTS


def effects():
    """jobs.lifecycle.effects: every side effect of a change, called from the transitions.

    Imported when first needed: it imports the webhook outbox, which needs this module's
    models, so a module-level import would be circular."""
    from jobs.lifecycle import effects

    return effects


def job_dir(job_id):
    return f"jobs/{job_id}"


def input_upload_to(job, filename):
    # The client's file name is kept in input_name only; paths are ours alone.
    return f"{job_dir(job.id)}/{filename}"


class Batch(models.Model):
    """Jobs submitted together with one set of options: one id to follow them by, and one
    `batch.completed` webhook once every one of them has ended (jobs/lifecycle/batches.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    created_at = models.DateTimeField(default=timezone.now)
    # When all its jobs had ended (the first time): set once, under the batch's row lock, by
    # the transition of the last of them.
    finished_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    webhook_url = models.CharField(max_length=2000, blank=True)
    webhook_events = models.JSONField(default=list, blank=True, help_text="the batch's own events")

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["owner", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="one_batch_per_idempotency_key",
            )
        ]

    def __str__(self):
        return f"batch {self.id}"


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    task = models.CharField(max_length=16, choices=[(t, t) for t in JOB_TASKS])
    model = models.CharField(max_length=64)
    # The Celery queue its model's spec routes it to, decided once at submit: a resend
    # (the reaper's, a recovery's) goes where the first message went.
    queue = models.CharField(max_length=64, default="light")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    input = models.FileField(upload_to=input_upload_to, max_length=255, blank=True)
    input_name = models.CharField(max_length=255, blank=True)
    # A photo given by URL is fetched by the worker: until then no input file, no size.
    input_url = models.CharField(max_length=2000, blank=True)
    input_width = models.PositiveIntegerField(null=True, blank=True)
    input_height = models.PositiveIntegerField(null=True, blank=True)
    options = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    # When its message was last sent: the reaper sends again a job queued long past this.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    queue_ms = models.PositiveIntegerField(null=True, blank=True)
    inference_ms = models.PositiveIntegerField(null=True, blank=True)
    rendering_ms = models.PositiveIntegerField(null=True, blank=True)

    class Stage(models.TextChoices):
        QUEUED = "queued"
        DECODING = "decoding"
        INFERRING = "inferring"
        RENDERING = "rendering"

    # Where the current attempt is; meaningful while the job is queued or running.
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True, help_text="Celery node of the last attempt")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    outputs = models.JSONField(default=dict, blank=True, help_text="kind -> file name in the job's folder")

    # The client's Idempotency-Key: a retried submit with the same key gets this job back.
    idempotency_key = models.CharField(max_length=255, blank=True)
    # An anonymous compatible client's address (jobs/compat/auth.py), as the throttle reads
    # it: their jobs share one user, so their queue cap counts per address. Empty for a
    # client with a token.
    client_address = models.CharField(max_length=64, blank=True)

    webhook_url = models.CharField(max_length=2000, blank=True)
    webhook_events = models.JSONField(default=list, blank=True, help_text="events sent to webhook_url")
    # The batch it was submitted in, if any (deleting the batch deletes it), and the
    # position of its image there.
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, null=True, blank=True, related_name="jobs")
    batch_index = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="one_job_per_idempotency_key",
            )
        ]

    def __str__(self):
        return f"{self.task} job {self.id} ({self.status})"

    @property
    def input_filename(self):
        """The stored input's name within the job's folder, e.g. input.jpg."""
        return self.input.name.rsplit("/", 1)[-1]

    def input_names(self):
        """The files the client sent, kept when the job is canceled: the photo, and a
        cutout's background image."""
        return tuple(n for n in (self.input_filename, self.options.get("background_image")) if n)

    @property
    def duration_ms(self):
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None

    # --- transitions ---------------------------------------------------------------------

    def _transition(self, condition, pinned=False, **changes):
        """Apply `changes` only if the row still matches `condition`; report.

        The row is read back afterwards, unless the transition is `pinned` and applied: its
        condition names the attempt that owns the job (status and attempts), whose worker
        alone writes to the row, so the row is this object plus `changes` (a read less per
        claim and per end of a job, about 4 ms of a worker's CPU at 512 px).
        """
        with transaction.atomic():
            updated = Job.objects.filter(Q(pk=self.pk) & condition).update(**changes)
            if updated == 1 and pinned:
                for field, value in changes.items():
                    setattr(self, field, value)
            else:
                try:
                    self.refresh_from_db()
                except Job.DoesNotExist:  # deleted meanwhile: nothing to refresh, nothing changed
                    return False
            if updated == 1:
                effects().status_changed(self)
        return updated == 1

    def claim(self, worker, redelivered=False, alone=True):
        """queued -> running for `worker`. False if another attempt owns or ended it.

        A `running` job is claimable when its earlier attempt is known to be dead: it ran
        under this same worker name on a node that runs one job at a time (`alone`; see
        README, "Workers"; a batching worker runs several on threads and is not), or the
        broker redelivered the message, which it does only after a pool process died or
        after a visibility timeout longer than any job may run.
        """
        now = timezone.now()
        claimable = Q(status=self.Status.QUEUED)
        if alone:
            claimable |= Q(status=self.Status.RUNNING, worker=worker)
        if redelivered:
            claimable |= Q(status=self.Status.RUNNING)
        # Pinned to the attempts this object read: a claim that raced another one fails.
        return self._transition(
            claimable & Q(attempts=self.attempts, attempts__lt=settings.JOB_MAX_ATTEMPTS),
            pinned=True,
            status=self.Status.RUNNING,
            stage=self.Stage.DECODING,
            worker=worker,
            attempts=self.attempts + 1,
            started_at=now,
            # Web and worker clocks differ slightly; never a negative wait.
            queue_ms=max(0, int((now - self.created_at).total_seconds() * 1000)),
        )

    def requeue(self):
        """running -> queued, for an attempt whose worker is known to be gone. Not sent yet:
        the caller sends it, or the reaper does if that fails."""
        return self._transition(
            Q(status=self.Status.RUNNING),
            status=self.Status.QUEUED,
            enqueued_at=None,
            stage=self.Stage.QUEUED,
        )

    def release(self, attempt):
        """running -> queued for the attempt that claimed it, uncounted: it stopped for a
        reason outside the job (the file store was unreachable). The task sends its message
        again after a countdown, so enqueued_at is set: the reaper need not."""
        return self._transition(
            Q(status=self.Status.RUNNING, attempts=attempt),
            pinned=True,
            status=self.Status.QUEUED,
            stage=self.Stage.QUEUED,
            attempts=attempt - 1,
            enqueued_at=timezone.now(),
        )

    def record_input(self, name, width, height):
        """The photo a worker fetched from input_url: its stored file's name and its size."""
        Job.objects.filter(pk=self.pk).update(input=name, input_width=width, input_height=height)
        self.input.name, self.input_width, self.input_height = name, width, height
        effects().stage_changed(self)

    def advance(self, stage):
        """Record the running attempt's stage; a plain UPDATE (no signal, no webhook): it is
        progress for a polling client, not a status change."""
        try:
            Job.objects.filter(pk=self.pk, status=self.Status.RUNNING, attempts=self.attempts).update(
                stage=stage
            )
            self.stage = stage
            effects().stage_changed(self)
        except DatabaseError as exc:  # best effort: a lost progress line must not fail the job
            log.warning("job %s: could not record stage %s: %s", self.pk, stage, exc)

    def succeed(self, result, outputs, inference_ms, rendering_ms):
        """running -> succeeded, only for the attempt that claimed it."""
        return self._transition(
            Q(status=self.Status.RUNNING, attempts=self.attempts),
            pinned=True,
            status=self.Status.SUCCEEDED,
            result=result,
            outputs=outputs,
            inference_ms=inference_ms,
            rendering_ms=rendering_ms,
            finished_at=timezone.now(),
        )

    def fail(self, code, message, attempt=None):
        """queued/running -> failed with a machine-readable code and a human message.

        A worker passes its `attempt` so that a stale attempt cannot fail a job that a
        later attempt now owns.
        """
        condition = (
            Q(status__in=self.ACTIVE) if attempt is None else Q(status=self.Status.RUNNING, attempts=attempt)
        )
        return self._transition(
            condition,
            pinned=attempt is not None,
            status=self.Status.FAILED,
            error_code=code,
            error_message=message,
            finished_at=timezone.now(),
        )

    def cancel(self):
        """queued/running -> canceled. A running attempt's results are then discarded."""
        return self._transition(
            Q(status__in=self.ACTIVE), status=self.Status.CANCELED, finished_at=timezone.now()
        )

    def run_again(self):
        """failed -> queued, as a fresh job: no error, no times, and JOB_MAX_ATTEMPTS
        attempts again (a job that failed with `worker_lost` has used them all, and would
        never be claimed). Not sent yet: the caller sends it, or the reaper does."""
        return self._transition(
            Q(status=self.Status.FAILED),
            status=self.Status.QUEUED,
            stage=self.Stage.QUEUED,
            attempts=0,
            worker="",
            error_code="",
            error_message="",
            result=None,
            outputs={},
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            queue_ms=None,
            inference_ms=None,
            rendering_ms=None,
        )


def new_webhook_secret():
    # Standard Webhooks: "whsec_" and the base64 of 24 to 64 random bytes.
    return "whsec_" + b64encode(secrets.token_bytes(32)).decode()


class WebhookSecret(models.Model):
    """A user's webhook signing secret. The previous one also signs for a grace period
    after a rotation, so receivers can switch without dropping deliveries."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="webhook_secret"
    )
    secret = models.CharField(max_length=100, default=new_webhook_secret)
    previous_secret = models.CharField(max_length=100, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"webhook secret of {self.user}"

    @classmethod
    def of(cls, user):
        return cls.objects.get_or_create(user=user)[0]

    def rotate(self):
        self.previous_secret = self.secret
        self.secret = new_webhook_secret()
        self.rotated_at = timezone.now()
        self.save()

    def signing_secrets(self, now):
        """The secrets a delivery made at `now` is signed with: current first."""
        in_grace = self.rotated_at and (now - self.rotated_at).total_seconds() < settings.WEBHOOK_SECRET_GRACE
        return [self.secret, self.previous_secret] if in_grace and self.previous_secret else [self.secret]


class WebhookDelivery(models.Model):
    """One event of one job (or batch) for its webhook URL: the message, sent until it is
    delivered.

    Its id is the Standard Webhooks `webhook-id`, the same on every attempt, so receivers
    can drop duplicates. The payload is the job (or batch) as it was when the event happened.
    """

    class State(models.TextChoices):
        PENDING = "pending"  # waiting for its next attempt (or in one)
        DELIVERED = "delivered"
        FAILED = "failed"  # refused (4xx) or out of retries

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Whose secret signs it and whose share of the io worker it takes (the job's or batch's owner).
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    # Of a job, or of a batch (`batch.completed`): one of the two.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, null=True, blank=True, related_name="webhook_deliveries"
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, null=True, blank=True, related_name="webhook_deliveries"
    )
    event = models.CharField(max_length=16, choices=[(e, e) for e in DELIVERY_EVENTS])
    url = models.CharField(max_length=2000)
    payload = models.TextField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    # When the next attempt is due; while an attempt runs, when it is presumed dead.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Failures since the last success or redelivery: the index into WEBHOOK_RETRY_DELAYS.
    failures = models.PositiveSmallIntegerField(default=0)
    # Set by each claim: only the attempt holding the current claim may settle the delivery.
    claim = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["job", "event"], name="one_delivery_per_job_event"),
            models.UniqueConstraint(fields=["batch", "event"], name="one_delivery_per_batch_event"),
            models.CheckConstraint(
                condition=Q(job__isnull=False, batch__isnull=True) | Q(job__isnull=True, batch__isnull=False),
                name="delivery_of_a_job_or_a_batch",
            ),
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self):
        return f"{self.event} webhook of {self.subject} ({self.state})"

    @property
    def subject(self):
        """What it announces, for logs: `job <id>` or `batch <id>`."""
        return f"job {self.job_id}" if self.job_id else f"batch {self.batch_id}"


class WebhookAttempt(models.Model):
    """One HTTP request of a delivery and what came of it."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="the start of the receiver's answer")
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="one_attempt_per_number")]

    def __str__(self):
        return f"attempt {self.number} of {self.delivery}"
