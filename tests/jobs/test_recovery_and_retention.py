"""Orphaned jobs are requeued or failed; old jobs and orphaned files are pruned."""

import io
import os
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.lifecycle.storage import write_job_file
from jobs.models import Job
from jobs.ops.broker import MARKER
from jobs.ops.reaper import reap
from jobs.ops.retention import delete_orphaned_files, prune
from tests import run_slot
from tests.jobs.helpers import submit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def broker(db):
    """The test Redis database, holding the marker of a broker that kept its messages."""
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    client.set(MARKER, "present")
    return client


@pytest.fixture
def job(alice, sent):
    job = Job.objects.get(pk=submit(alice).json()["id"])
    sent.calls.clear()  # only what the reaper sends counts
    return job


def age(job, **fields):
    """Move a job's times into the past, as if it had been there that long."""
    Job.objects.filter(pk=job.pk).update(**{name: timezone.now() - delta for name, delta in fields.items()})
    job.refresh_from_db()


def test_a_job_running_past_its_deadline_is_requeued_and_sent_again(job, sent, settings):
    job.claim("gone@host")
    age(job, started_at=timedelta(seconds=settings.JOB_TIME_LIMIT + 30 + 61))
    assert reap() == {"requeued": 1, "failed": 0, "resent": 0}
    job.refresh_from_db()
    assert job.status == "queued" and [c["task_id"] for c in sent.calls] == [str(job.id)]
    assert job.claim("other@host") and job.attempts == 2  # any worker takes it over


def test_a_job_that_lost_its_worker_at_every_attempt_fails_as_worker_lost(job, sent, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    job.claim("w@host")
    job.claim("w@host")
    age(job, started_at=timedelta(hours=1))
    assert reap()["failed"] == 1
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "worker_lost" and sent.calls == []


def test_a_job_within_its_deadline_is_left_alone(job, sent):
    job.claim("busy@host")
    age(job, started_at=timedelta(seconds=60))
    assert reap() == {"requeued": 0, "failed": 0, "resent": 0}
    assert Job.objects.get(pk=job.pk).status == "running"


def test_a_queued_job_whose_message_may_be_lost_is_sent_again_once_per_period(job, sent, settings):
    age(job, enqueued_at=timedelta(seconds=settings.JOB_REQUEUE_AFTER + 1))
    assert reap()["resent"] == 1 and len(sent.calls) == 1
    assert reap()["resent"] == 0  # sending it again reset its clock
    assert len(sent.calls) == 1


def test_a_job_never_sent_is_sent_a_minute_later(job, sent):
    # The web process died between storing the job and sending it.
    Job.objects.filter(pk=job.pk).update(enqueued_at=None)
    assert reap()["resent"] == 0  # maybe still being sent
    age(job, created_at=timedelta(seconds=61))
    assert reap()["resent"] == 1 and [c["task_id"] for c in sent.calls] == [str(job.id)]


def test_a_broker_that_came_back_empty_gets_every_queued_job_again_at_once(alice, sent, broker):
    jobs = [submit(alice).json()["id"] for _ in range(3)]
    sent.calls.clear()
    run_slot.empty(broker)  # a Redis restarted without persistence: every message is gone
    assert reap()["resent"] == 3 and [c["task_id"] for c in sent.calls] == jobs
    assert reap()["resent"] == 0  # noticed once; the marker is back


def test_while_the_broker_is_down_the_reaper_fails_nothing(job, sent, settings):
    job.claim("gone@host")
    age(job, created_at=timedelta(hours=1), started_at=timedelta(hours=1))
    sent.fail = True
    assert reap() == {"requeued": 0, "failed": 0, "resent": 0}
    job.refresh_from_db()
    assert job.status == "queued" and job.error_code == ""  # requeued, not yet sent

    sent.fail = False  # the next pass, once the broker is back
    assert reap()["resent"] == 1 and [c["task_id"] for c in sent.calls] == [str(job.id)]


def test_reap_jobs_command_reports_what_it_did(job, sent):
    job.claim("gone@host")
    age(job, started_at=timedelta(days=1))
    out = io.StringIO()
    call_command("reap_jobs", stdout=out)
    assert out.getvalue().strip() == "requeued 1, failed 0, resent 0"


def test_prune_deletes_old_finished_jobs_with_their_files_and_keeps_the_rest(alice, sent):
    old_done, old_queued, new_done = (Job.objects.get(pk=submit(alice).json()["id"]) for _ in range(3))
    for finished in (old_done, new_done):
        finished.claim("w@host")
        write_job_file(finished, "mask.png", b"png")
        finished.succeed({}, {"mask": "mask.png"}, 1, 1)
    age(old_done, created_at=timedelta(days=8))
    age(old_queued, created_at=timedelta(days=8))
    assert prune(timedelta(days=7)) == {"jobs": 1, "batches": 0, "orphaned_folders": 0}
    assert set(Job.objects.values_list("pk", flat=True)) == {old_queued.pk, new_done.pk}
    assert not default_storage.exists(f"jobs/{old_done.id}/mask.png")
    assert default_storage.exists(f"jobs/{new_done.id}/mask.png")


def test_orphaned_folders_are_deleted_once_past_their_grace(db):
    orphan, fresh = uuid.uuid4(), uuid.uuid4()
    for folder in (orphan, fresh):
        default_storage.save(f"jobs/{folder}/input.png", io.BytesIO(b"png"))
    old = time.time() - 7200
    os.utime(default_storage.path(f"jobs/{orphan}/input.png"), (old, old))  # its newest file
    default_storage.save("jobs/not-a-job/readme.txt", io.BytesIO(b"keep"))
    assert delete_orphaned_files() == 1
    assert not default_storage.exists(f"jobs/{orphan}/input.png")
    assert default_storage.exists(f"jobs/{fresh}/input.png") and default_storage.exists(
        "jobs/not-a-job/readme.txt"
    )


@pytest.mark.parametrize("value", ["7", "7w", "-1d", "d", "7 days"])
def test_prune_jobs_refuses_a_duration_it_cannot_read(value):
    with pytest.raises(CommandError, match="write a number and d, h or m"):
        call_command("prune_jobs", f"--older-than={value}")


def test_prune_jobs_command_prunes_by_its_duration(alice, sent):
    done = Job.objects.get(pk=submit(alice).json()["id"])
    done.cancel()
    age(done, created_at=timedelta(hours=3))
    out = io.StringIO()
    call_command("prune_jobs", "--older-than", "2h", stdout=out)
    assert "deleted 1 job(s)" in out.getvalue() and not Job.objects.exists()
