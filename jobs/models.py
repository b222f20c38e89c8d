"""The Job: one uploaded image to segment, its lifecycle and its results.

The row is the API contract: clients poll it, workers claim and finish it. Every status
change is a conditional UPDATE on the status it expects, so two actors racing (a cancel
and a finishing worker, a redelivered message and the first delivery) cannot both win.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from workers.catalog import TASKS


def job_dir(job_id):
    return f"jobs/{job_id}"


def input_upload_to(job, filename):
    # The client's file name is kept in input_name only; paths are ours alone.
    return f"{job_dir(job.id)}/{filename}"


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
    task = models.CharField(max_length=16, choices=[(t, t) for t in TASKS])
    model = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    input = models.FileField(upload_to=input_upload_to, max_length=255)
    input_name = models.CharField(max_length=255, blank=True)
    input_width = models.PositiveIntegerField()
    input_height = models.PositiveIntegerField()
    options = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    queue_ms = models.PositiveIntegerField(null=True, blank=True)
    inference_ms = models.PositiveIntegerField(null=True, blank=True)
    rendering_ms = models.PositiveIntegerField(null=True, blank=True)

    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True, help_text="Celery node of the last attempt")
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    outputs = models.JSONField(default=dict, blank=True, help_text="kind -> file name in the job's folder")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status"]),
        ]

    def __str__(self):
        return f"{self.task} job {self.id} ({self.status})"

    @property
    def input_filename(self):
        """The stored input's name within the job's folder, e.g. input.jpg."""
        return self.input.name.rsplit("/", 1)[-1]

    @property
    def duration_ms(self):
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None

    # --- transitions ---------------------------------------------------------------------

    def _transition(self, condition, **changes):
        """Apply `changes` only if the row still matches `condition`; refresh; report."""
        updated = Job.objects.filter(Q(pk=self.pk) & condition).update(**changes)
        try:
            self.refresh_from_db()
        except Job.DoesNotExist:  # deleted meanwhile: nothing to refresh, nothing changed
            return False
        return updated == 1

    def claim(self, worker, redelivered=False):
        """queued -> running for `worker`. False if another attempt owns or ended it.

        A `running` job is claimable when its earlier attempt is known to be dead: it ran
        under this same worker name (a node runs one job at a time; see README, "Workers"),
        or the broker redelivered the message, which it does only after a pool process died
        or after a visibility timeout longer than any job may run.
        """
        now = timezone.now()
        claimable = Q(status=self.Status.QUEUED) | Q(status=self.Status.RUNNING, worker=worker)
        if redelivered:
            claimable |= Q(status=self.Status.RUNNING)
        return self._transition(
            claimable & Q(attempts__lt=settings.JOB_MAX_ATTEMPTS),
            status=self.Status.RUNNING,
            worker=worker,
            attempts=F("attempts") + 1,
            started_at=now,
            # Web and worker clocks differ slightly; never a negative wait.
            queue_ms=max(0, int((now - self.created_at).total_seconds() * 1000)),
        )

    def requeue(self):
        """running -> queued, for an attempt whose worker is known to be gone."""
        return self._transition(Q(status=self.Status.RUNNING), status=self.Status.QUEUED)

    def succeed(self, result, outputs, inference_ms, rendering_ms):
        """running -> succeeded, only for the attempt that claimed it."""
        return self._transition(
            Q(status=self.Status.RUNNING, attempts=self.attempts),
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
