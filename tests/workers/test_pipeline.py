"""run_job in process: claim, decode, infer, render, store, record, with real engines."""

import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image

from jobs.lifecycle.storage import job_file_path
from jobs.models import Job
from tests.conftest import eval_photo, gradient, image_bytes
from tests.jobs.helpers import submit
from tests.workers.helpers import succeeded
from workers.pipeline import run_job

pytestmark = pytest.mark.django_db


def submitted(client, path=None, **fields):
    data = eval_photo(path).read_bytes() if path else image_bytes(gradient())
    response = submit(client, data=data, name="in.jpg" if path else "in.png", **fields)
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])


def open_output(job, name):
    with default_storage.open(job_file_path(job, name)) as handle:
        return Image.open(io.BytesIO(handle.read()))


def test_a_semantic_job_writes_mask_and_overlay_at_original_size(alice, sent, engines):
    job = submitted(alice, "photos/astronaut.jpg", task="semantic")
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    assert job.outputs == {"mask": "mask.png", "overlay": "overlay.jpg"}
    mask = open_output(job, "mask.png")
    assert mask.mode == "P" and mask.size == (job.input_width, job.input_height)
    assert (np.asarray(mask) == 15).mean() >= 0.30
    assert open_output(job, "overlay.jpg").size == mask.size
    person = next(c for c in job.result["classes"] if c["label"] == "person")
    assert person["fraction"] >= 0.30
    assert job.inference_ms is not None and job.rendering_ms is not None


def test_an_instance_job_writes_instances_overlay_and_rle(alice, sent, engines):
    job = submitted(alice, "photos/chelsea.jpg", task="instance")
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    cat = job.result["instances"][0]
    assert cat["label"] == "cat" and cat["score"] >= 0.5 and cat["index"] == 1
    instances = np.asarray(open_output(job, "instances.png"))
    assert instances.shape == (job.input_height, job.input_width)
    # Its pixels in the map: all of its mask but what a later instance painted over.
    assert 0 < (instances == 1).sum() <= cat["area"]
    assert set(cat) >= {"bbox", "area", "rle", "class_id"}


def finished(client, path, **fields):
    job = submitted(client, path, **fields)
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    return job


def test_an_instance_jobs_json_carries_its_polygons_and_stays_small(alice, sent, engines):
    job = finished(alice, "photos/chelsea.jpg", task="instance")
    response = alice.get(f"/api/v1/jobs/{job.pk}/")
    summary = response.json()["result"]["summary"]
    assert summary["instances"][0]["label"] == "cat" and summary["instances"][0]["polygons"]
    assert summary["polygon_budget"] == {
        "max_points": 10_000,
        "points": summary["polygon_budget"]["points"],
        "simplified": False,
        "truncated": False,
    }
    assert len(response.content) < 20_000


def test_an_instance_jobs_classes_and_score_threshold_reach_the_engine(alice, sent, engines):
    """Checked by the detections that come back, so that dropping either option anywhere
    between the request and the engine fails here."""
    everything = finished(alice, "photos/chelsea.jpg", task="instance", score_threshold="0.05")
    labels = [i["label"] for i in everything.result["instances"]]
    assert "cat" in labels and len(labels) >= 2, labels  # more than the cat at a low threshold
    scores = sorted((i["score"] for i in everything.result["instances"]), reverse=True)
    cut = (scores[0] + scores[1]) / 2  # between the best two: exactly one is left
    strict = finished(alice, "photos/chelsea.jpg", task="instance", score_threshold=f"{cut:.4f}")
    assert [i["score"] for i in strict.result["instances"]] == pytest.approx(scores[:1], abs=1e-3)
    others = finished(
        alice, "photos/chelsea.jpg", task="instance", score_threshold="0.05", classes="dog,person"
    )
    # The cat is still found, as the likeliest of the classes asked for.
    assert {i["label"] for i in others.result["instances"]} <= {"dog", "person"} and others.result[
        "instances"
    ]


def test_a_semantic_jobs_classes_reach_the_engine(alice, sent, engines):
    only_cats = finished(alice, "photos/astronaut.jpg", task="semantic", classes="cat")
    assert not (np.asarray(open_output(only_cats, "mask.png")) == 15).any()  # no person left
    assert {c["label"] for c in only_cats.result["classes"]} <= {"background", "cat"}


def phone_photo(path):
    """A 4032x3024 JPEG (a phone's 12 MP) of an eval photo."""
    photo = Image.open(eval_photo(path)).convert("RGB").resize((4032, 3024), Image.BICUBIC)
    return image_bytes(photo, "JPEG", quality=92)


def box_iou(one, other):
    """Intersection over union of two COCO boxes (x, y, width, height)."""
    (x0, y0, w0, h0), (x1, y1, w1, h1) = one, other
    width = max(0, min(x0 + w0, x1 + w1) - max(x0, x1))
    height = max(0, min(y0 + h0, y1 + h1) - max(y0, y1))
    return width * height / (w0 * h0 + w1 * h1 - width * height)


def run_large(client, data, settings, overlay_max_side, task):
    settings.OVERLAY_MAX_SIDE = overlay_max_side
    return succeeded(client, task, data, "phone.jpg")


def test_a_large_photo_is_drawn_reduced_while_its_mask_stays_full_size(alice, sent, engines, settings):
    data = phone_photo("photos/astronaut.jpg")
    reduced = run_large(alice, data, settings, 2048, "semantic")
    whole = run_large(alice, data, settings, 0, "semantic")
    mask, whole_mask = (np.asarray(open_output(job, "mask.png")) for job in (reduced, whole))
    assert mask.shape == whole_mask.shape == (3024, 4032)
    assert (reduced.input_width, reduced.input_height) == (4032, 3024)
    person, whole_person = mask == 15, whole_mask == 15
    assert person.mean() >= 0.30  # the astronaut
    # The network saw the same picture: the outlines differ by a pixel or two of its own.
    assert (person & whole_person).sum() / (person | whole_person).sum() > 0.97
    assert open_output(reduced, "overlay.jpg").size == (2016, 1512)
    assert open_output(whole, "overlay.jpg").size == (4032, 3024)
    assert [c["label"] for c in reduced.result["classes"]] == [c["label"] for c in whole.result["classes"]]


def test_a_large_photos_instances_are_found_at_its_full_size(alice, sent, engines, settings):
    data = phone_photo("photos/chelsea.jpg")
    reduced = run_large(alice, data, settings, 2048, "instance")
    whole = run_large(alice, data, settings, 0, "instance")
    index_map = np.asarray(open_output(reduced, "instances.png"))
    assert index_map.shape == (3024, 4032)
    assert open_output(reduced, "overlay.jpg").size == (2016, 1512)
    found, expected = reduced.result["instances"], whole.result["instances"]
    assert [i["label"] for i in found] == [i["label"] for i in expected] and found
    for one, other in zip(found, expected, strict=True):
        # Boxes in the photo's own pixels, where the full decode's are. Not to the pixel: this
        # cat's box moves by 7% of the photo's width when it is only saved again as a JPEG.
        assert box_iou(one["bbox"], other["bbox"]) > 0.85, (one["bbox"], other["bbox"])
        assert one["rle"]["size"] == [3024, 4032]


@pytest.mark.parametrize("task", ["semantic", "instance"])
def test_a_panorama_too_long_for_jpeg_gets_a_png_overlay(alice, sent, engines, task, settings):
    settings.OVERLAY_MAX_SIDE = 0  # drawn at full size (by default it is drawn reduced)
    wide = image_bytes(gradient(width=66000, height=16))  # libjpeg stops at 65500 a side
    response = submit(alice, data=wide, name="in.png", task=task)
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    assert job.outputs["overlay"] == "overlay.png"
    assert open_output(job, "overlay.png").size == (66000, 16)


def test_running_the_same_job_twice_does_nothing_the_second_time(alice, sent, engines):
    job = submitted(alice, task="semantic")
    run_job(job.pk, "w@test")
    finished = Job.objects.get(pk=job.pk)
    run_job(job.pk, "w2@test")
    again = Job.objects.get(pk=job.pk)
    assert again.attempts == finished.attempts == 1 and again.finished_at == finished.finished_at


def test_a_job_canceled_before_it_runs_is_skipped(alice, sent, engines):
    job = submitted(alice, task="semantic")
    job.cancel()
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "canceled" and job.attempts == 0


def test_a_corrupted_stored_input_fails_the_job_cleanly(alice, sent, engines):
    job = submitted(alice, task="semantic")
    with default_storage.open(job.input.name, "wb") as handle:
        handle.write(b"overwritten")
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "invalid_image"


def test_a_job_of_a_model_this_worker_does_not_serve_fails_clearly(alice, sent, engines, monkeypatch):
    from workers import registry

    job = submitted(alice, task="semantic")
    monkeypatch.delitem(registry._models, "deeplabv3_mnv2_pascal")
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "model_unavailable"


def test_a_job_that_exhausted_its_attempts_fails_as_worker_lost(alice, sent, engines, settings):
    settings.JOB_MAX_ATTEMPTS = 1
    job = submitted(alice, task="semantic")
    job.claim("w@test")  # the attempt whose worker died
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "worker_lost"


def test_a_batching_worker_leaves_a_job_another_of_its_threads_runs(alice, sent, engines, monkeypatch):
    from workers import registry

    monkeypatch.setattr(registry, "_batchers", {"shared": object()})
    job = submitted(alice, task="semantic")
    job.claim("w@test")  # a thread of this same node runs it; a duplicate message arrives
    run_job(job.pk, "w@test")
    job.refresh_from_db()
    assert job.status == "running" and job.attempts == 1


def test_a_retry_takes_back_the_job_its_own_earlier_run_left_running(alice, sent, engines, monkeypatch):
    # A database error after the claim: Celery retries the task, the message not marked
    # redelivered. Even a batching worker (several jobs under one name) takes the job back.
    from celery.utils.nodenames import gethostname

    from workers import registry, tasks

    monkeypatch.setattr(registry, "_batchers", {"shared": object()})
    job = submitted(alice, task="semantic")
    job.claim(gethostname())  # the hostname Task.apply runs under
    tasks.segment.apply(args=[str(job.pk)], retries=1)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.attempts == 2


class InterruptingEngine:
    """Wraps the real engine and lets the test act on the job while inference runs."""

    def __init__(self, engine, during):
        self.engine, self.during, self.spec = engine, during, engine.spec

    def infer(self, rgb, options, size=None):
        self.during()
        return self.engine.infer(rgb, options, size)


def run_interrupted(job, during, monkeypatch):
    from workers import pipeline

    real = pipeline.get_model(job.model)
    monkeypatch.setattr(pipeline, "get_model", lambda name: InterruptingEngine(real, during))
    run_job(job.pk, "w@test")


def test_a_job_canceled_while_running_keeps_its_input_and_no_outputs(alice, sent, engines, monkeypatch):
    job = submitted(alice, task="semantic")
    run_interrupted(job, lambda: Job.objects.get(pk=job.pk).cancel(), monkeypatch)
    job.refresh_from_db()
    assert job.status == "canceled" and job.result is None
    assert default_storage.listdir(f"jobs/{job.pk}")[1] == ["input.png"]


def test_a_job_deleted_while_running_leaves_no_files(alice, sent, engines, monkeypatch):
    from jobs.lifecycle.services import delete_job

    job = submitted(alice, task="semantic")
    run_interrupted(job, lambda: delete_job(Job.objects.get(pk=job.pk)), monkeypatch)
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not default_storage.exists(f"jobs/{job.pk}/mask.png")
    assert not default_storage.exists(f"jobs/{job.pk}/input.png")


def test_a_stale_attempt_cannot_fail_the_attempt_that_took_over(alice, sent):
    job = submitted(alice, task="semantic")
    job.claim("w@test")
    stale_attempt = job.attempts
    job.claim("w@test")
    assert not job.fail("internal_error", "stale", attempt=stale_attempt)
    assert job.status == "running"


def test_a_job_over_its_time_limit_fails_with_timeout(alice, sent, engines, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    def too_slow():
        raise SoftTimeLimitExceeded()

    job = submitted(alice, task="semantic")
    run_interrupted(job, too_slow, monkeypatch)
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "timeout"


def test_a_stray_duplicate_does_not_fail_a_last_attempt_running_elsewhere(alice, sent, engines, settings):
    settings.JOB_MAX_ATTEMPTS = 1
    job = submitted(alice, task="semantic")
    job.claim("w1@test")  # the last attempt, alive on w1
    run_job(job.pk, "w2@test")  # a duplicate message reaches w2
    job.refresh_from_db()
    assert job.status == "running" and job.worker == "w1@test"
    run_job(job.pk, "w2@test", redelivered=True)  # the broker says w1's attempt died
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "worker_lost"
