"""The pixellib models (random-weight fixtures) end to end, on queues of their own.

The fixture files are written by tests/fixtures/heavy_weights.py in a separate process,
under the real file names, and workers load them exactly as they load the real ones.
"""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from core.repository import scan
from jobs.models import Job
from tests.conftest import eval_photo
from tests.fixtures.repository import copy_models

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
HEAVY = ["deeplabv3plus_xception_pascal", "mask_rcnn_coco"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """The shipped model folders with the light weights, plus random-weight heavy files."""
    folder = copy_models(tmp_path_factory.mktemp("models"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    subprocess.run(
        [sys.executable, "-m", "tests.fixtures.heavy_weights", str(folder)],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
    )
    return folder


@pytest.fixture
def heavy_settings(settings, models_dir):
    settings.SEGMENT_MODELS_DIR = models_dir  # the web side sees the heavy weights too
    return models_dir


def heavy_worker(start_worker, models_dir, names, env=None, pool_args=(), name=None):
    env = {"SEGMENT_MODELS_DIR": str(models_dir), "WORKER_MODELS": ",".join(names), **(env or {})}
    specs = scan(models_dir).specs
    queues = ",".join(specs[name].queue for name in names)
    return start_worker(
        name or "heavy-" + "-".join(n.split("_")[0] for n in names),
        queues=queues,
        env=env,
        timeout=240,
        pool_args=pool_args,
    )


def fetch(url):
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


@pytest.fixture
def stop_after_the_test():
    """Stops the workers given to it when the test ends, passed or failed: a worker left
    running would take the next test's jobs (the module's workers live until its end)."""
    workers = []
    yield workers.append
    for worker in workers:
        worker.stop()


def test_both_heavy_models_run_through_the_api_with_the_light_models_output_shape(
    start_worker, heavy_settings, client, stop_after_the_test
):
    stop_after_the_test(heavy_worker(start_worker, heavy_settings, HEAVY))
    photo = eval_photo("photos/chelsea.jpg").read_bytes()

    semantic = client.wait(
        client.submit(photo, "chelsea.jpg", task="semantic", model="deeplabv3plus_xception_pascal").headers[
            "Location"
        ],
        timeout=120,
    )
    assert semantic["status"] == "succeeded", semantic["error"]
    assert set(semantic["result"]["files"]) == {"mask", "overlay"}
    assert set(semantic["result"]["summary"]) == {"image_size", "classes"}
    mask = np.asarray(fetch(semantic["result"]["files"]["mask"]))
    assert mask.shape == (300, 451) and (mask == 15).mean() > 0.5  # the fixture leans to person

    instance = client.wait(
        client.submit(photo, "chelsea.jpg", task="instance", model="mask_rcnn_coco").headers["Location"],
        timeout=120,
    )
    assert instance["status"] == "succeeded", instance["error"]
    assert set(instance["result"]["files"]) == {"instances", "overlay"}
    found = instance["result"]["summary"]["instances"]
    assert found and {i["label"] for i in found} == {"cat"}
    assert set(found[0]) == {"index", "label", "class_id", "score", "bbox", "area", "rle", "polygons"}
    index_map = np.asarray(fetch(instance["result"]["files"]["instances"]))
    assert index_map.shape == (300, 451) and index_map.max() >= 1
    assert (index_map == 1).sum() > 0 and found[0]["area"] > 0
    overlay = np.asarray(fetch(instance["result"]["files"]["overlay"]).convert("RGB"))
    original = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    assert (overlay != original).any(axis=2).mean() > 0.01  # masks and boxes were drawn
    assert Job.objects.get(pk=instance["id"]).worker == Job.objects.get(pk=semantic["id"]).worker
    print(
        f"\nheavy jobs: deeplab {semantic['timings']}, mask r-cnn {instance['timings']}, "
        f"{len(found)} instances"
    )


def test_a_batching_heavy_worker_runs_both_models_from_its_batcher_threads(
    start_worker, heavy_settings, client, stop_after_the_test
):
    # What the GPU worker runs (docker-compose's worker-heavy): jobs on threads, TensorFlow's
    # graph-mode models called from each model's Batcher thread, DeepLab's photos batched.
    worker = heavy_worker(
        start_worker,
        heavy_settings,
        HEAVY,
        env={"BATCH_MAX": "2", "BATCH_WAIT_MS": "1000"},
        pool_args=["--pool", "threads", "--concurrency", "3"],
        name="heavy-batching",
    )
    stop_after_the_test(worker)
    photo = eval_photo("photos/astronaut.jpg").read_bytes()
    fields = [("semantic", "deeplabv3plus_xception_pascal")] * 2 + [("instance", "mask_rcnn_coco")]
    urls = [
        client.submit(photo, "a.jpg", task=task, model=model).headers["Location"] for task, model in fields
    ]
    jobs = [client.wait(url, timeout=180) for url in urls]
    assert [job["status"] for job in jobs] == ["succeeded"] * 3, [job["error"] for job in jobs]
    for job in jobs[:2]:
        assert (np.asarray(fetch(job["result"]["files"]["mask"])) == 15).mean() > 0.5
    assert jobs[2]["result"]["summary"]["instances"]
    assert "ran a batch of 2 photos" in worker.log()
    assert "model mask_rcnn_coco: batches of up to 1" in worker.log()


def test_light_jobs_do_not_wait_behind_heavy_ones(start_worker, heavy_settings, client):
    light = start_worker("light-beside-heavy")
    heavy = heavy_worker(start_worker, heavy_settings, ["mask_rcnn_coco"])
    photo = eval_photo("photos/astronaut.jpg").read_bytes()

    heavy_urls = [
        client.submit(photo, "a.jpg", task="instance", model="mask_rcnn_coco").headers["Location"]
        for _ in range(3)
    ]
    light_started = time.monotonic()
    light_jobs = [
        client.wait(
            client.submit(photo, "a.jpg", task="semantic", model="deeplabv3_mnv2_pascal").headers["Location"]
        )
        for _ in range(5)
    ]
    light_seconds = time.monotonic() - light_started
    heavy_jobs = [client.wait(url, timeout=180) for url in heavy_urls]

    assert all(job["status"] == "succeeded" for job in light_jobs + heavy_jobs)
    light_workers = {Job.objects.get(pk=job["id"]).worker for job in light_jobs}
    heavy_workers = {Job.objects.get(pk=job["id"]).worker for job in heavy_jobs}
    assert light_workers == {f"light-beside-heavy@{light_hostname(light)}"}
    assert heavy_workers == {f"{heavy.name}@{light_hostname(heavy)}"}
    last_light = max(Job.objects.get(pk=job["id"]).finished_at for job in light_jobs)
    last_heavy = max(Job.objects.get(pk=job["id"]).finished_at for job in heavy_jobs)
    assert last_light < last_heavy  # the light jobs finished while heavy ones were still queued
    light_ms = [job["timings"]["inference_ms"] + job["timings"]["rendering_ms"] for job in light_jobs]
    models = client.get(f"{client.base_url}/api/v1/models/").json()["models"]
    serving = {m["name"]: m["workers"] for m in models}
    assert serving["mask_rcnn_coco"] == [f"{heavy.name}@{light_hostname(heavy)}"]
    assert serving["yolov8n_seg_coco"] == [f"light-beside-heavy@{light_hostname(light)}"]
    print(
        f"\n5 light jobs in {light_seconds:.2f} s (work per job {light_ms} ms) while 3 Mask R-CNN jobs "
        f"took {(last_heavy - min(Job.objects.get(pk=j['id']).created_at for j in heavy_jobs)).total_seconds():.1f} s"
    )
    light.stop()
    heavy.stop()


def light_hostname(worker):
    return os.uname().nodename


def refused_log(
    start_worker, name, models_dir, queues="mask_rcnn_coco", models="mask_rcnn_coco", timeout=120
):
    """Start a worker that must refuse to start; return its log."""
    worker = start_worker(
        name,
        queues=queues,
        expect_ready=False,
        env={"SEGMENT_MODELS_DIR": str(models_dir), "WORKER_MODELS": models},
    )
    worker.process.wait(timeout=timeout)
    assert not worker.alive()
    return worker.log()


def test_a_worker_refuses_to_start_with_a_wrong_or_missing_weight_file(start_worker, models_dir, tmp_path):
    wrong = copy_models(tmp_path / "wrong", ["mask_rcnn_coco"], weights=False)
    (wrong / "mask_rcnn_coco" / "mask_rcnn_coco.h5").symlink_to(
        models_dir / "deeplabv3plus_xception_pascal" / "deeplabv3_xception_tf_dim_ordering_tf_kernels.h5"
    )
    # The pool process's failed load stops the whole worker.
    log = refused_log(start_worker, "wrong-weights", wrong)
    assert "does not fit" in log and "mask_rcnn_coco.h5" in log

    log = refused_log(
        start_worker, "no-weights", copy_models(tmp_path / "bare", ["mask_rcnn_coco"], weights=False)
    )
    assert "mask_rcnn_coco.h5 is missing" in log and "PixelLib/releases" in log

    broken = copy_models(tmp_path / "broken", ["mask_rcnn_coco"], weights=False)
    (broken / "mask_rcnn_coco" / "mask_rcnn_coco.h5").symlink_to(
        models_dir / "mask_rcnn_coco" / "mask_rcnn_coco.h5"
    )
    (broken / "half_written").mkdir()
    (broken / "half_written" / "model.toml").write_text('task = "panoptic"\n')
    log = refused_log(start_worker, "broken-spec", broken)
    assert "half_written/model.toml: task is 'panoptic'" in log

    log = refused_log(start_worker, "wrong-queue", models_dir, queues="light")
    assert "start it with --queues mask_rcnn_coco" in log

    log = refused_log(
        start_worker, "half-a-queue", models_dir, queues="light", models="deeplabv3_mnv2_pascal"
    )
    assert "also carry jobs for [" in log and "'yolov8n_seg_coco'" in log
