"""Job transitions are conditional updates: whoever loses a race changes nothing."""

import pytest

from jobs.lifecycle.services import recover_orphans
from jobs.models import Job
from tests.jobs.helpers import submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(alice, sent):
    return Job.objects.get(pk=submit(alice).json()["id"])


def test_a_queued_job_is_claimed_once(job):
    assert job.claim("w1@host")
    assert job.status == "running" and job.attempts == 1 and job.worker == "w1@host"
    assert job.queue_ms is not None and job.started_at is not None
    assert not Job.objects.get(pk=job.pk).claim("w2@host")


def test_a_redelivery_to_the_same_worker_reclaims_its_dead_attempt(job):
    assert job.claim("w1@host")
    assert job.claim("w1@host")
    assert job.attempts == 2


def test_a_claim_from_a_stale_read_fails_and_counts_no_attempt_wrong(job):
    # Read, then claimed elsewhere and put back in the queue (its worker died): the row is
    # queued again, as the stale read saw it, but one attempt on. A claim does not read the
    # row back, so it must not succeed on attempts it has not seen.
    stale = Job.objects.get(pk=job.pk)
    assert job.claim("w1@host") and job.requeue()
    assert not stale.claim("w2@host")
    assert stale.attempts == 1 and stale.status == "queued"  # read back, as every loser is
    assert stale.claim("w2@host")
    assert Job.objects.get(pk=job.pk).attempts == stale.attempts == 2


def test_a_batching_worker_never_takes_over_a_job_running_under_its_own_name(job):
    # Its threads run several jobs under one node name: the first attempt may be alive.
    assert job.claim("gpu@host", alone=False)
    assert not job.claim("gpu@host", alone=False)
    assert job.attempts == 1
    assert job.claim("gpu@host", redelivered=True, alone=False)  # the broker knows it died


def test_claims_stop_at_the_attempt_limit(job, settings):
    settings.JOB_MAX_ATTEMPTS = 2
    assert job.claim("w1@host") and job.claim("w1@host")
    assert not job.claim("w1@host")
    assert job.attempts == 2


def test_only_the_attempt_that_claimed_can_succeed(job):
    job.claim("w1@host")
    stale = Job.objects.get(pk=job.pk)
    job.claim("w1@host")  # a second attempt took over
    assert not stale.succeed({}, {}, 1, 1)
    assert job.succeed({"ok": True}, {"mask": "mask.png"}, 1, 2)
    assert job.status == "succeeded" and job.finished_at and job.result == {"ok": True}


def test_a_canceled_job_cannot_succeed_or_be_claimed(job):
    job.claim("w1@host")
    Job.objects.get(pk=job.pk).cancel()
    assert not job.succeed({}, {}, 1, 1)
    assert job.status == "canceled"
    assert not job.claim("w1@host")


def test_terminal_jobs_cannot_fail_or_cancel_again(job):
    job.fail("invalid_image", "broken")
    assert not job.cancel() and not job.fail("other", "x")
    assert job.error_code == "invalid_image"


def test_only_a_failed_job_runs_again_and_it_starts_afresh(job, alice):
    assert not job.run_again()  # queued
    succeeded, canceled = (Job.objects.get(pk=submit(alice).json()["id"]) for _ in range(2))
    succeeded.claim("w1@host")
    succeeded.succeed({}, {}, 1, 1)
    canceled.cancel()
    assert not succeeded.run_again() and not canceled.run_again()
    assert (succeeded.status, canceled.status) == ("succeeded", "canceled")
    job.claim("w1@host")
    job.fail("internal_error", "The job failed because of an internal error.", attempt=1)
    assert job.run_again()
    assert (job.status, job.stage, job.attempts, job.worker) == ("queued", "queued", 0, "")
    assert (job.error_code, job.error_message, job.started_at, job.finished_at) == ("", "", None, None)
    assert not Job.objects.get(pk=job.pk).run_again()  # queued again: nothing to do twice
    assert job.claim("w2@host") and job.attempts == 1


def test_a_restarted_worker_requeues_only_its_own_orphans(alice, sent):
    mine, other = (Job.objects.get(pk=submit(alice).json()["id"]) for _ in range(2))
    mine.claim("w1@host")
    other.claim("w2@host")
    sent.calls.clear()
    assert recover_orphans("w1@host") == [mine.pk]
    assert Job.objects.get(pk=mine.pk).status == "queued"
    assert Job.objects.get(pk=other.pk).status == "running"
    assert [c["task_id"] for c in sent.calls] == [str(mine.pk)]


def test_a_redelivered_message_reclaims_a_job_whose_pool_process_died_elsewhere(job):
    assert job.claim("w1@host")
    assert not job.claim("w2@host")  # a stray duplicate: the first attempt may be alive
    assert job.claim("w2@host", redelivered=True)  # the broker says the first one died
    assert job.worker == "w2@host" and job.attempts == 2


def test_queue_wait_is_never_negative_when_clocks_differ(job):
    from datetime import timedelta

    Job.objects.filter(pk=job.pk).update(created_at=job.created_at + timedelta(seconds=5))
    job.refresh_from_db()
    assert job.claim("w1@host") and job.queue_ms == 0


def test_files_go_with_the_job_however_it_is_deleted(alice, sent, django_user_model):
    from django.core.files.storage import default_storage

    job = Job.objects.get(pk=submit(alice).json()["id"])
    assert default_storage.exists(job.input.name)
    alice.user.delete()  # the owner's cascade, as the admin's user deletion does
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not default_storage.exists(job.input.name)
