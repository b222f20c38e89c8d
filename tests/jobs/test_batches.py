"""Batches: several images with one set of options, each an ordinary job, one webhook at the end."""

import json
import threading
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook

from jobs.lifecycle import batches
from jobs.models import Batch, Job, WebhookDelivery
from jobs.ops import retention
from jobs.webhooks import outbox
from tests.jobs.helpers import assert_error, submit, upload
from tests.odd_images import cases

pytestmark = pytest.mark.django_db


def submit_batch(client, count=3, task="semantic", images=None, **fields):
    """POST /batches/ with `count` small PNGs (or `images`); HTTP_* fields go as headers."""
    images = [upload(f"photo{i}.png") for i in range(count)] if images is None else images
    headers = {name: fields.pop(name) for name in list(fields) if name.startswith("HTTP_")}
    data = {"image": images, "task": task, **fields}
    return client.post("/api/v1/batches/", data, format="multipart", **headers)


def job_folders():
    return set(default_storage.listdir("jobs")[0]) if default_storage.exists("jobs") else set()


def jobs_of(body):
    return [Job.objects.get(pk=job["id"]) for job in body["jobs"]]


def finish(job, outcome="succeed"):
    """End a job as a worker (or a client's cancel) would, through its transitions."""
    job.refresh_from_db()
    if outcome == "cancel":
        return job.cancel()
    if job.status == Job.Status.QUEUED:
        job.claim("w1@host")
    if outcome == "fail":
        return job.fail("invalid_image", "broken", attempt=job.attempts)
    return job.succeed({"image_size": [64, 48]}, {"mask": "mask.png"}, 10, 5)


@pytest.fixture
def queued(monkeypatch, sent):
    """Delivery tasks queued by the outbox: [delivery id]."""
    calls = []

    class Broker:
        def send_task(self, name, args=None, queue=None, countdown=None, **kwargs):
            calls.append(args[0])

    monkeypatch.setattr(outbox, "current_app", Broker())
    return calls


def test_a_batch_makes_one_ordinary_job_per_image_with_the_shared_options(alice, sent):
    response = submit_batch(alice, 3, "instance", classes="cat,dog", score_threshold="0.3")
    assert response.status_code == 202, response.content
    body = response.json()
    assert response["Location"] == body["url"] and body["url"].endswith(f"/api/v1/batches/{body['id']}/")
    assert body["status"] == "active" and body["finished_at"] is None
    assert body["counts"] == {"queued": 3, "running": 0, "succeeded": 0, "failed": 0, "canceled": 0}
    assert [job["index"] for job in body["jobs"]] == [0, 1, 2]
    ids = [job["id"] for job in body["jobs"]]
    assert [call["task_id"] for call in sent.calls] == ids  # each queued as any job, its id the task's
    for index, job in enumerate(body["jobs"]):
        shown = alice.get(job["url"]).json()
        assert shown["status"] == "queued" and shown["model"] == "yolov8n_seg_coco"
        assert shown["options"] == {"classes": ["cat", "dog"], "score_threshold": 0.3}
        assert shown["input"]["filename"] == f"photo{index}.png" and shown["input"]["width"] == 64
        assert shown["batch"] == {"id": body["id"], "url": body["url"], "index": index}
        assert alice.get(shown["input"]["url"]).status_code == 200
    assert alice.post(body["jobs"][0]["url"] + "cancel/").json()["status"] == "canceled"
    assert alice.get(body["url"]).json()["counts"]["canceled"] == 1
    assert submit(alice).json()["batch"] is None  # a job submitted alone


def test_a_batch_of_image_urls_makes_jobs_the_workers_fetch(alice, sent):
    urls = [f"https://photos.example.com/{i}.jpg" for i in range(2)]
    response = alice.post("/api/v1/batches/", {"image_url": urls, "task": "semantic"}, format="multipart")
    assert response.status_code == 202, response.content
    jobs = jobs_of(response.json())
    assert [job.input_url for job in jobs] == urls and not any(job.input for job in jobs)
    as_json = alice.post("/api/v1/batches/", {"image_url": urls, "task": "matte"}, format="json")
    assert as_json.status_code == 202 and len(as_json.json()["jobs"]) == 2


def test_a_cutout_batch_keeps_the_background_image_beside_every_job(alice, sent):
    response = submit_batch(alice, 2, "cutout", background_image=upload("sky.png"))
    assert response.status_code == 202, response.content
    for job in jobs_of(response.json()):
        assert job.options["background_image"] == "background.png"
        assert default_storage.exists(f"jobs/{job.id}/background.png")


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"images": 4}, "image"),  # one past MAX_BATCH_SIZE
        ({"images": 0}, "image"),
        ({"images": 2, "image_url": "https://photos.example.com/a.jpg"}, "image"),
    ],
    ids=["over the limit", "no image", "both image and image_url"],
)
def test_a_batch_of_the_wrong_shape_is_400_and_stores_nothing(alice, sent, settings, fields, field):
    settings.MAX_BATCH_SIZE = 3
    before = job_folders()
    count = fields.pop("images")
    error = assert_error(submit_batch(alice, count, **fields), 400, "invalid_request")
    assert field in error["fields"], error
    assert not Batch.objects.exists() and not Job.objects.exists() and sent.calls == []
    assert job_folders() == before


def test_an_empty_list_of_image_urls_is_400(alice, sent):
    error = assert_error(
        alice.post("/api/v1/batches/", {"image_url": [], "task": "semantic"}, format="json"), 400
    )
    assert "image_url" in error["fields"]


def test_the_shared_options_are_checked_as_for_one_job(alice, sent):
    assert_error(submit_batch(alice, 2, "semantic", classes="unicorn"), 400, "unknown_class")
    assert_error(submit_batch(alice, 2, "semantic", model="nope"), 400, "unknown_model")
    assert_error(submit_batch(alice, 2, "matte", score_threshold="0.5"), 400, "invalid_request")
    assert not Job.objects.exists() and sent.calls == []


@pytest.mark.parametrize(
    "case", ["truncated jpeg", "decompression bomb png", "unsupported format (PPM)", "empty file"]
)
def test_a_bad_seventh_image_refuses_the_whole_batch_naming_it(alice, sent, case):
    [bad] = [c for c in cases() if c.name == case]
    images = [upload(f"photo{i}.png") for i in range(9)]
    images[6] = upload(bad.filename, bad.data)
    before = job_folders()
    error = assert_error(submit_batch(alice, images=images), bad.expect)
    assert list(error["fields"]) == ["image.6"] and error["message"].startswith("image.6"), error
    assert not Batch.objects.exists() and not Job.objects.exists() and sent.calls == []
    assert job_folders() == before


def test_backpressure_counts_every_job_of_a_batch(alice, bob, sent, settings):
    settings.MAX_QUEUED_JOBS_PER_USER = 5
    submit(alice)
    response = submit_batch(alice, 5)  # 1 + 5 > 5: refused whole
    assert_error(response, 429, "too_many_queued_jobs")
    assert response["Retry-After"] == "30"
    assert Job.objects.count() == 1 and not Batch.objects.exists() and len(sent.calls) == 1
    assert submit_batch(alice, 4).status_code == 202  # 1 + 4 fits exactly
    assert_error(submit(alice), 429, "too_many_queued_jobs")
    settings.MAX_QUEUED_JOBS = 7  # 5 queued in all: bob's batch of 3 would make 8
    assert_error(submit_batch(bob, 3), 429, "queue_full")
    assert submit_batch(bob, 2).status_code == 202


def test_a_retried_batch_submit_answers_200_with_the_same_batch(alice, bob, sent, settings):
    settings.MAX_QUEUED_JOBS_PER_USER = 3
    first = submit_batch(alice, 3, HTTP_IDEMPOTENCY_KEY="batch-1")
    again = submit_batch(alice, 3, HTTP_IDEMPOTENCY_KEY="batch-1")  # never refused, though the cap is full
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"]
    assert Batch.objects.count() == 1 and Job.objects.count() == 3 and len(sent.calls) == 3
    assert submit_batch(bob, 1, HTTP_IDEMPOTENCY_KEY="batch-1").status_code == 202  # keys are per user


def test_when_the_broker_is_down_a_batch_is_503_and_nothing_is_kept(alice, sent):
    before = job_folders()
    sent.fail = True
    response = submit_batch(alice, 3, HTTP_IDEMPOTENCY_KEY="retry-me")
    assert_error(response, 503, "queue_unavailable")
    assert not Batch.objects.exists() and not Job.objects.exists() and job_folders() == before
    sent.fail = False
    assert submit_batch(alice, 3, HTTP_IDEMPOTENCY_KEY="retry-me").status_code == 202  # the key is not spent


def test_another_users_batch_is_404_like_a_missing_one(alice, bob, sent):
    batch = submit_batch(alice, 2).json()
    assert_error(bob.get(batch["url"]), 404, "not_found")
    assert_error(bob.delete(batch["url"]), 404, "not_found")
    assert_error(alice.get("/api/v1/batches/00000000-0000-0000-0000-000000000000/"), 404, "not_found")
    assert bob.get("/api/v1/batches/").json()["count"] == 0
    assert_error(bob.get(batch["jobs"][0]["url"]), 404, "not_found")
    assert alice.get(batch["url"]).json()["id"] == batch["id"]


def test_the_list_shows_my_batches_newest_first_paginated(alice, bob, sent):
    mine = [submit_batch(alice, 1).json()["id"] for _ in range(3)]
    submit_batch(bob, 1)
    page = alice.get("/api/v1/batches/?page_size=2").json()
    assert page["count"] == 3 and [b["id"] for b in page["results"]] == mine[::-1][:2]
    assert [b["id"] for b in alice.get(page["next"]).json()["results"]] == mine[:1]
    assert_error(alice.get("/api/v1/batches/?page=99"), 404, "not_found")


def test_a_batch_counts_its_jobs_per_status_and_finishes_with_its_last(alice, sent):
    body = submit_batch(alice, 4).json()
    first, second, third, fourth = jobs_of(body)
    finish(first)
    finish(second, "fail")
    third.claim("w2@host")
    shown = alice.get(body["url"]).json()
    assert shown["counts"] == {"queued": 1, "running": 1, "succeeded": 1, "failed": 1, "canceled": 0}
    assert [job["status"] for job in shown["jobs"]] == ["succeeded", "failed", "running", "queued"]
    assert shown["status"] == "active" and shown["finished_at"] is None
    finish(fourth, "cancel")
    finish(third)
    shown = alice.get(body["url"]).json()
    assert shown["status"] == "finished" and shown["finished_at"]
    assert shown["counts"] == {"queued": 0, "running": 0, "succeeded": 2, "failed": 1, "canceled": 1}


@pytest.fixture
def hooked_batch(alice, allow_local, receiver, queued, django_capture_on_commit_callbacks):
    """make(count, events=None): a batch with a webhook to a scripted receiver."""

    def make(count, events=None):
        hooks = receiver([200])
        fields = {"webhook_url": hooks.url} | ({"webhook_events": events} if events else {})
        with django_capture_on_commit_callbacks(execute=True):
            body = submit_batch(alice, count, **fields).json()
        return Batch.objects.get(pk=body["id"]), jobs_of(body), hooks

    return make


def test_batch_completed_is_recorded_once_when_the_last_job_ends_and_none_before(
    alice, hooked_batch, queued, django_capture_on_commit_callbacks
):
    batch, jobs, hooks = hooked_batch(3)
    assert batch.webhook_events == ["batch.completed"]  # the default for a batch
    assert all(job.webhook_url == "" and job.webhook_events == [] for job in jobs)  # none asked per job
    with django_capture_on_commit_callbacks(execute=True):
        finish(jobs[0])
        finish(jobs[1], "fail")
    assert not WebhookDelivery.objects.exists() and queued == []
    with django_capture_on_commit_callbacks(execute=True):
        finish(jobs[2], "cancel")
    [delivery] = WebhookDelivery.objects.all()
    assert (delivery.batch_id, delivery.job_id, delivery.event) == (batch.id, None, "batch.completed")
    assert delivery.owner == alice.user and queued == [str(delivery.id)]
    payload = json.loads(delivery.payload)
    assert payload["id"] == str(batch.id) and payload["status"] == "finished" and payload["finished_at"]
    assert [(job["id"], job["status"]) for job in payload["jobs"]] == [
        (str(jobs[0].id), "succeeded"),
        (str(jobs[1].id), "failed"),
        (str(jobs[2].id), "canceled"),
    ]
    assert payload["counts"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1, "canceled": 1}
    shown = alice.get(f"/api/v1/batches/{batch.id}/").json()
    assert set(payload) == set(shown) - {"webhook_deliveries"}
    assert [d["event"] for d in shown["webhook_deliveries"]] == ["batch.completed"]

    with django_capture_on_commit_callbacks(execute=True):
        outbox.deliver(queued.pop())
    _, headers, body = hooks.requests[0]
    secret = alice.get("/api/v1/account/").json()["webhook_secret"]
    assert Webhook(secret).verify(body, headers)["id"] == str(batch.id)
    assert headers["webhook-id"] == str(delivery.id)
    delivery.refresh_from_db()
    assert delivery.state == "delivered"


def test_a_finished_batch_is_never_finished_twice(
    hooked_batch, queued, django_capture_on_commit_callbacks, caplog
):
    batch, [job], _ = hooked_batch(1)
    with django_capture_on_commit_callbacks(execute=True):
        finish(job)
    batch.refresh_from_db()
    finished_at = batch.finished_at
    job.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        batches.job_ended(job)  # the last job's end, seen a second time
        assert not job.cancel()  # and a late transition of an ended job, which takes no effect
    batch.refresh_from_db()
    assert batch.finished_at == finished_at and WebhookDelivery.objects.count() == 1 and len(queued) == 1
    assert "could not record" not in caplog.text  # held by the batch, not by the constraint behind it


def test_per_job_events_come_as_asked_beside_the_batchs(
    hooked_batch, queued, django_capture_on_commit_callbacks
):
    batch, jobs, _ = hooked_batch(2, "completed,batch.completed")
    assert batch.webhook_events == ["batch.completed"]
    assert all(job.webhook_events == ["completed"] for job in jobs)
    with django_capture_on_commit_callbacks(execute=True):
        for job in jobs:
            finish(job)
    assert {(d.event, d.job_id, d.batch_id) for d in WebhookDelivery.objects.all()} == {
        ("completed", jobs[0].id, None),
        ("completed", jobs[1].id, None),
        ("batch.completed", None, batch.id),
    }
    only_jobs, jobs, _ = hooked_batch(1, "completed")
    with django_capture_on_commit_callbacks(execute=True):
        finish(jobs[0])
    assert not WebhookDelivery.objects.filter(batch=only_jobs).exists()


@pytest.mark.django_db(transaction=True)
def test_the_last_two_jobs_ending_at_once_on_two_workers_write_one_batch_completed(
    alice, allow_local, receiver, queued, monkeypatch
):
    """Both transitions have updated their job and neither has committed when each asks
    whether its batch is done: only the batch's row lock makes the second ask again after
    the first's commit. Without it each sees the other still running, and none is written."""
    body = submit_batch(alice, 2, webhook_url=receiver().url).json()
    jobs = jobs_of(body)
    for job in jobs:
        job.claim(f"worker-{job.batch_index}@host")
    both_updated = threading.Barrier(2, timeout=10)
    real_job_ended = batches.job_ended

    def job_ended_after_both_updates(job):
        both_updated.wait()
        real_job_ended(job)

    monkeypatch.setattr(batches, "job_ended", job_ended_after_both_updates)
    outcomes = {}

    def succeed(job):
        try:
            outcomes[job.id] = job.succeed({"image_size": [64, 48]}, {"mask": "mask.png"}, 10, 5)
        finally:
            connection.close()

    threads = [threading.Thread(target=succeed, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert list(outcomes.values()) == [True, True]
    assert [d.event for d in WebhookDelivery.objects.filter(batch_id=body["id"])] == ["batch.completed"]
    assert Batch.objects.get(pk=body["id"]).finished_at is not None
    assert len(queued) == 1


def test_deleting_a_batch_deletes_its_jobs_and_files_canceling_the_unfinished(
    alice, sent, django_capture_on_commit_callbacks
):
    before = job_folders()
    body = submit_batch(alice, 3).json()
    jobs = jobs_of(body)
    finish(jobs[0])
    jobs[1].claim("w1@host")
    canceled = []
    real_cancel = Job.cancel
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Job, "cancel", lambda job: canceled.append(job.id) or real_cancel(job))
        assert alice.delete(body["url"]).status_code == 204
    assert sorted(canceled) == sorted([jobs[1].id, jobs[2].id])  # the running one and the queued one
    assert not Job.objects.exists() and not Batch.objects.exists() and job_folders() == before
    assert_error(alice.get(body["jobs"][0]["url"]), 404)


def test_deleting_a_batchs_last_unfinished_job_still_finishes_the_batch(
    alice, hooked_batch, queued, django_capture_on_commit_callbacks
):
    batch, jobs, _ = hooked_batch(2)
    with django_capture_on_commit_callbacks(execute=True):
        finish(jobs[0])
        assert alice.delete(f"/api/v1/jobs/{jobs[1].id}/").status_code == 204
    batch.refresh_from_db()
    assert batch.finished_at is not None
    assert [d.event for d in batch.webhook_deliveries.all()] == ["batch.completed"]
    assert alice.get(f"/api/v1/batches/{batch.id}/").json()["counts"]["succeeded"] == 1


def test_retention_removes_a_batch_once_its_jobs_are_gone(alice, sent):
    body = submit_batch(alice, 2).json()
    for job in jobs_of(body):
        finish(job)
    unfinished = submit_batch(alice, 1).json()  # its job is still queued: kept, and so is it
    long_ago = timezone.now() - timedelta(days=30)
    Batch.objects.update(created_at=long_ago)
    Job.objects.update(created_at=long_ago)
    pruned = retention.prune(timedelta(days=7))
    assert (pruned["jobs"], pruned["batches"]) == (2, 1)
    assert [str(pk) for pk in Batch.objects.values_list("id", flat=True)] == [unfinished["id"]]


def test_the_admin_lists_batches(admin_client, alice, sent):
    body = submit_batch(alice, 2).json()
    listing = admin_client.get("/admin/jobs/batch/")
    assert listing.status_code == 200 and body["id"] in listing.content.decode()
