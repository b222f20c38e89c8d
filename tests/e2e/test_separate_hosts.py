"""A web process and a worker that share nothing but the network: separate, empty
MEDIA_ROOTs, the weights on the worker's side only, their files in one S3 bucket (a real
SeaweedFS). The whole job flow must work, and neither disk may hold a job's file."""

import io
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from jobs.models import Job
from tests.conftest import eval_photo
from tests.e2e.test_webhooks import IO_ENV, RECEIVER_PORT, secret_of
from tests.e2e.test_worker_kill import large_photo, wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def bucket(seaweedfs):
    name = f"hosts-{uuid.uuid4().hex[:12]}"
    client = seaweedfs.client()
    client.create_bucket(Bucket=name)
    yield name
    for item in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


@pytest.fixture(scope="module")
def worker_disk(tmp_path_factory):
    return tmp_path_factory.mktemp("worker-media")


@pytest.fixture(scope="module")
def far_host(seaweedfs, bucket, worker_disk, live_server):
    """The worker host's environment: the bucket, its own disk, the web host's public URL
    (a webhook payload's file URLs are built there)."""
    return {
        **seaweedfs.environment(bucket),
        "MEDIA_ROOT": str(worker_disk),
        "PUBLIC_BASE_URL": live_server.url,
    }


@pytest.fixture(scope="module")
def worker(start_worker, far_host):
    return start_worker("far-away", env=far_host)


@pytest.fixture(scope="module")
def io_worker(start_worker, far_host):
    return start_worker(
        "far-away-io",
        queues="webhooks",
        env={**far_host, **IO_ENV},
        pool_args=["--pool", "threads", "--concurrency", "2"],
    )


@pytest.fixture
def web_host(settings, seaweedfs, bucket, tmp_path):
    """The live server's process: its own empty MEDIA_ROOT, no model folder, the bucket."""
    settings.MEDIA_ROOT = tmp_path / "web-media"
    settings.MEDIA_ROOT.mkdir()
    settings.SEGMENT_MODELS_DIR = tmp_path / "no-models"
    settings.MEDIA_STORAGE = "s3"
    settings.STORAGES = {**settings.STORAGES, "default": seaweedfs.storage_options(bucket)}
    return settings.MEDIA_ROOT


def objects(seaweedfs, bucket, job_id):
    listed = seaweedfs.client().list_objects_v2(Bucket=bucket, Prefix=f"jobs/{job_id}/")
    return sorted(item["Key"].rsplit("/", 1)[-1] for item in listed.get("Contents", []))


def job_files(*folders):
    return [path for folder in folders for path in Path(folder).rglob("*") if path.is_file()]


def wait_for_log(worker, text, timeout=60):
    deadline = time.monotonic() + timeout
    while text not in worker.log():
        assert time.monotonic() < deadline, f"{text!r} not logged after {timeout}s:\n{worker.log()[-3000:]}"
        time.sleep(0.05)


def test_the_job_flow_across_two_hosts_that_share_only_a_bucket(
    worker, web_host, worker_disk, client, seaweedfs, bucket, figure
):
    photo = eval_photo("photos/astronaut.jpg").read_bytes()
    # Submit and wait in the request.
    done = client.submit(photo, "astronaut.jpg", task="semantic", headers={"Prefer": "wait=30"}).json()
    assert done["status"] == "succeeded", done["error"]
    assert objects(seaweedfs, bucket, done["id"]) == ["input.jpg", "mask.png", "overlay.jpg"]
    mask = np.asarray(
        Image.open(io.BytesIO(requests.get(done["result"]["files"]["mask"], timeout=30).content))
    )
    assert mask.shape == (512, 512) and (mask == 15).mean() > 0.3
    assert requests.get(done["input"]["url"], timeout=30).content == photo

    # A cutout, polled; the MAX API, which reads the worker's output back from the bucket.
    cutout = client.wait(
        client.submit(photo, "a.jpg", task="cutout", foreground="person").headers["Location"]
    )
    assert cutout["status"] == "succeeded" and set(cutout["result"]["files"]) == {"matte", "cutout"}
    predicted = client.session.post(
        f"{client.base_url}/model/predict", files={"image": ("a.jpg", photo)}, timeout=60
    )
    assert predicted.status_code == 200 and predicted.json()["image_size"] == [513, 513]

    # Neither host's disk holds a job's file; a delete removes the objects.
    assert job_files(web_host, worker_disk) == []
    assert (
        client.session.delete(f"{client.base_url}/api/v1/jobs/{done['id']}/", timeout=30).status_code == 204
    )
    assert objects(seaweedfs, bucket, done["id"]) == []
    figure(
        "separate hosts (own MEDIA_ROOTs, weights on the worker only, one SeaweedFS bucket): "
        "wait, poll, download, cutout, MAX predict, delete all worked; 0 job files on either disk"
    )


def test_a_webhook_from_the_worker_host_links_to_the_mask_in_the_bucket(
    worker, io_worker, web_host, worker_disk, client, seaweedfs, bucket, start_receiver, settings
):
    """The payload is built on the worker host; its signed file URL must lead, with no
    Authorization header, through the web host to the worker's object in the bucket."""
    settings.WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{RECEIVER_PORT}"]
    receiver = start_receiver(secret_of(client), port=RECEIVER_PORT)
    photo = eval_photo("photos/astronaut.jpg").read_bytes()
    job_id = client.submit(photo, task="semantic", webhook_url=receiver.url).json()["id"]
    [delivered] = receiver.wait_for(1)
    assert delivered["payload"]["id"] == job_id and delivered["payload"]["status"] == "succeeded"
    [delivery] = client.get(f"/api/v1/jobs/{job_id}/").json()["webhook_deliveries"]
    assert delivery["id"] == delivered["webhook_id"] and delivery["event"] == "completed"

    url = delivered["payload"]["result"]["files"]["mask"]
    assert url.startswith(f"{client.base_url}/"), url
    downloaded = requests.get(url, timeout=30)
    assert downloaded.status_code == 200, downloaded.text
    stored = seaweedfs.client().get_object(Bucket=bucket, Key=f"jobs/{job_id}/mask.png")["Body"].read()
    assert downloaded.content == stored
    mask = np.asarray(Image.open(io.BytesIO(downloaded.content)))
    assert mask.shape == (512, 512) and (mask == 15).mean() > 0.3
    assert job_files(web_host, worker_disk) == []


def test_canceled_jobs_keep_only_their_input_in_the_bucket(
    worker, web_host, worker_disk, client, seaweedfs, bucket
):
    """The worker host, not the web host, holds a running attempt's outputs: it must remove
    them from the bucket, and never start a job canceled while queued."""
    running = client.submit(large_photo(), "large.jpg", task="semantic").json()["id"]
    assert wait_for_status(running, {"running", "succeeded"}, timeout=60).status == "running"
    queued = client.submit(eval_photo("photos/astronaut.jpg").read_bytes(), task="semantic").json()
    assert queued["status"] == "queued"

    for job_id in (queued["id"], running):
        canceled = client.session.post(f"{client.base_url}/api/v1/jobs/{job_id}/cancel/", timeout=30)
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text
    wait_for_log(worker, f"job {running} is canceled; discarding this attempt's results")
    wait_for_log(worker, f"job {queued['id']} not claimed (status canceled)")

    for job_id in (queued["id"], running):
        assert client.get(f"/api/v1/jobs/{job_id}/").json()["status"] == "canceled"
        assert objects(seaweedfs, bucket, job_id) == ["input.jpg"]
    assert job_files(web_host, worker_disk) == []


def test_a_job_whose_worker_host_is_killed_finishes_in_the_bucket(
    worker, web_host, worker_disk, client, seaweedfs, bucket, figure
):
    """A SIGKILL leaves no cleanup: the restarted worker must finish the job from the bucket
    alone and put its outputs there, not on a disk."""
    job_id = client.submit(large_photo(), "large.jpg", task="semantic").json()["id"]
    running = wait_for_status(job_id, {"running", "succeeded"}, timeout=60)
    assert running.status == "running", "the job finished before the kill; the window is too small"
    assert running.worker.startswith("far-away@"), running.worker
    worker.kill()
    time.sleep(1)
    assert Job.objects.get(pk=job_id).status == "running"

    started = time.monotonic()
    worker.start()
    done = wait_for_status(job_id, {"succeeded", "failed", "canceled"}, timeout=120)
    assert done.status == "succeeded", done.error_message
    assert done.attempts == 2 and "requeued 1 job(s) orphaned" in worker.this_life_log()
    assert objects(seaweedfs, bucket, job_id) == ["input.jpg", "mask.png", "overlay.jpg"]
    mask = client.get(client.get(f"/api/v1/jobs/{job_id}/").json()["result"]["files"]["mask"])
    assert Image.open(io.BytesIO(mask.content)).size == (6000, 6000)
    assert job_files(web_host, worker_disk) == []
    figure(
        f"separate hosts, worker SIGKILLed mid-job and restarted: succeeded "
        f"{time.monotonic() - started:.1f} s after the restart, attempts={done.attempts}, outputs in the bucket"
    )
