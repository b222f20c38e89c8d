"""A web process and a worker that share nothing but the network: separate, empty
MEDIA_ROOTs, the weights on the worker's side only, their files in one S3 bucket (a real
SeaweedFS). The whole job flow must work, and neither disk may hold a job's file."""

import io
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import eval_photo

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
def worker(start_worker, seaweedfs, bucket, worker_disk):
    return start_worker("far-away", env={**seaweedfs.environment(bucket), "MEDIA_ROOT": str(worker_disk)})


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
