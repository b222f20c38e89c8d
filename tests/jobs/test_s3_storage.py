"""MEDIA_STORAGE=s3 against a real SeaweedFS: a job's files live in the bucket only, are
downloaded streamed or by a presigned redirect, and go with the job."""

import io
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from django.conf import settings as django_settings
from django.core.management import call_command
from PIL import Image

from jobs.lifecycle.storage import is_unreachable
from jobs.models import Job
from jobs.ops.retention import delete_orphaned_files
from tests.conftest import eval_photo
from tests.fixtures.seaweedfs import free_port
from tests.jobs.helpers import submit
from workers.pipeline import StoreUnavailable, run_job

pytestmark = [pytest.mark.django_db, pytest.mark.store]


def keys(client, bucket, prefix="jobs/"):
    return sorted(
        item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    )


def finished_job(alice, **fields):
    response = submit(alice, data=eval_photo("photos/astronaut.jpg").read_bytes(), name="a.jpg", **fields)
    assert response.status_code == 202, response.content
    run_job(response.json()["id"], "w@test")
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "succeeded", job.error_message
    return job


def test_a_jobs_files_live_in_the_bucket_and_nowhere_on_disk(alice, sent, engines, s3_media):
    client, bucket = s3_media
    job = finished_job(alice)
    assert keys(client, bucket) == [
        f"jobs/{job.pk}/{name}" for name in ("input.jpg", "mask.png", "overlay.jpg")
    ]
    assert not (Path(django_settings.MEDIA_ROOT) / "jobs" / str(job.pk)).exists()

    body = alice.get(f"/api/v1/jobs/{job.pk}/").json()
    streamed = alice.get(body["result"]["files"]["mask"])
    assert streamed.status_code == 200
    mask = np.asarray(Image.open(io.BytesIO(b"".join(streamed.streaming_content))))
    assert mask.shape == (512, 512) and (mask == 15).mean() > 0.3


def test_a_download_may_redirect_to_a_presigned_url_of_the_object(alice, sent, engines, s3_media, settings):
    client, bucket = s3_media
    job = finished_job(alice)
    settings.MEDIA_DOWNLOADS = "redirect"
    answer = alice.get(alice.get(f"/api/v1/jobs/{job.pk}/").json()["result"]["files"]["overlay"])
    assert answer.status_code == 302 and answer["Cache-Control"] == "no-store"
    fetched = requests.get(answer["Location"], timeout=30)  # the client goes to the bucket itself
    stored = client.get_object(Bucket=bucket, Key=f"jobs/{job.pk}/overlay.jpg")["Body"].read()
    assert fetched.status_code == 200 and fetched.content == stored
    assert "X-Amz-Signature=" in answer["Location"]  # presigned, not a public URL


def test_deleting_a_job_removes_its_objects(alice, sent, engines, s3_media):
    client, bucket = s3_media
    job = finished_job(alice, task="cutout")
    assert len(keys(client, bucket)) == 3  # input, matte, cutout
    assert alice.delete(f"/api/v1/jobs/{job.pk}/").status_code == 204
    assert keys(client, bucket) == []


def test_a_canceled_running_job_keeps_only_its_input_in_the_bucket(
    alice, sent, engines, s3_media, monkeypatch
):
    from workers import pipeline

    client, bucket = s3_media
    response = submit(alice, data=eval_photo("photos/astronaut.jpg").read_bytes(), name="a.jpg")
    job = Job.objects.get(pk=response.json()["id"])
    real = pipeline.get_model

    def cancel_then_infer(name):
        Job.objects.get(pk=job.pk).cancel()
        return real(name)

    monkeypatch.setattr(pipeline, "get_model", cancel_then_infer)
    run_job(job.pk, "w@test")
    assert Job.objects.get(pk=job.pk).status == "canceled"
    assert keys(client, bucket) == [f"jobs/{job.pk}/input.jpg"]


def test_the_orphan_sweep_works_on_a_bucket(s3_media, db):
    import uuid

    from django.core.files.storage import default_storage

    client, bucket = s3_media
    orphan = uuid.uuid4()
    default_storage.save(f"jobs/{orphan}/input.png", io.BytesIO(b"png"))
    assert delete_orphaned_files(grace=3600) == 0  # just written: inside its grace
    assert delete_orphaned_files(grace=0) == 1
    assert keys(client, bucket) == []


def test_create_bucket_makes_the_bucket_once(settings, seaweedfs):
    name = f"created-{uuid.uuid4().hex[:10]}"
    settings.MEDIA_STORAGE = "s3"
    settings.STORAGES = {**settings.STORAGES, "default": seaweedfs.storage_options(name)}
    out = io.StringIO()
    call_command("create_bucket", stdout=out)
    call_command("create_bucket", stdout=out)
    assert out.getvalue().splitlines() == [f"bucket {name} created", f"bucket {name} exists"]
    seaweedfs.client().head_bucket(Bucket=name)  # raises if it is not there
    seaweedfs.client().delete_bucket(Bucket=name)


def test_storage_errors_that_mean_the_store_is_down_and_those_that_do_not():
    assert is_unreachable(EndpointConnectionError(endpoint_url="http://store:8333"))
    assert is_unreachable(ReadTimeoutError(endpoint_url="http://store:8333"))
    assert is_unreachable(ClientError({"ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"))
    assert not is_unreachable(ClientError({"ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject"))
    assert not is_unreachable(FileNotFoundError("jobs/x/mask.png"))


def test_a_submit_while_the_store_is_down_is_503_with_retry_after_and_leaves_nothing(
    alice, settings, seaweedfs, db
):
    # A bucket on a port nothing listens on: connection refused, as while SeaweedFS restarts.
    settings.MEDIA_STORAGE = "s3"
    unreachable_store(settings, seaweedfs, "anything")
    response = submit(alice)
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert int(response["Retry-After"]) > 0
    assert not Job.objects.exists()


def unreachable_store(settings, seaweedfs, bucket):
    """The same bucket's settings with the endpoint moved to a port nothing listens on."""
    options = seaweedfs.storage_options(bucket)
    options["OPTIONS"] = {**options["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{free_port()}"}
    settings.STORAGES = {**settings.STORAGES, "default": options}


def test_a_worker_that_cannot_reach_the_store_puts_the_job_back_uncounted(
    alice, sent, engines, s3_media, seaweedfs, settings
):
    response = submit(alice, data=eval_photo("photos/astronaut.jpg").read_bytes(), name="a.jpg")
    job_id = response.json()["id"]
    unreachable_store(settings, seaweedfs, s3_media[1])
    with pytest.raises(StoreUnavailable):
        run_job(job_id, "w@test")
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.attempts, job.stage) == ("queued", 0, "queued") and job.enqueued_at


def test_deleting_a_job_while_the_store_is_down_still_deletes_it(
    alice, sent, engines, s3_media, seaweedfs, settings
):
    job = finished_job(alice)
    unreachable_store(settings, seaweedfs, s3_media[1])
    assert alice.delete(f"/api/v1/jobs/{job.pk}/").status_code == 204
    assert not Job.objects.filter(pk=job.pk).exists()
    # Its objects wait for the orphan sweep.
    assert len(keys(*s3_media)) == 3
