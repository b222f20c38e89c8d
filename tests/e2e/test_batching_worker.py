"""A batching worker (--pool threads, BATCH_MAX): jobs' photos run together, each job alone."""

import io
import re
import time

import numpy as np
import pytest
import requests
from PIL import Image

from jobs.models import Job
from tests.conftest import eval_photo
from tests.e2e.test_worker_kill import large_photo, wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BATCHING = {"BATCH_MAX": "4", "BATCH_WAIT_MS": "300"}
THREADS = ["--pool", "threads", "--concurrency", "4"]
PERSON, CAT = 15, 8


def mask_of(client, job):
    response = requests.get(job["result"]["files"]["mask"], timeout=30)
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_jobs_that_arrive_together_run_as_one_batch_and_each_gets_its_own_mask(start_worker, client):
    worker = start_worker("batching", env=BATCHING, pool_args=THREADS)
    photos = {
        "astronaut": eval_photo("photos/astronaut.jpg").read_bytes(),
        "chelsea": eval_photo("photos/chelsea.jpg").read_bytes(),
    }
    sent = []
    for index in range(8):
        name = ("astronaut", "chelsea")[index % 2]
        response = client.submit(photos[name], f"{name}.jpg", task="semantic")
        assert response.status_code == 202, response.text
        sent.append((name, response.headers["Location"]))
    jobs = [(name, client.wait(location, timeout=120)) for name, location in sent]

    for name, job in jobs:
        assert job["status"] == "succeeded", job["error"]
        mask = mask_of(client, job)
        # Each job's mask is of its own photo: a slice handed to the wrong job would swap them.
        if name == "astronaut":
            assert (mask == PERSON).mean() >= 0.30 and not (mask == CAT).any()
        else:
            assert (mask == CAT).mean() >= 0.20
    batches = [int(size) for size in re.findall(r"ran a batch of (\d+) photos", worker.log())]
    assert batches and max(batches) > 1 and max(batches) <= 4, batches
    assert {job.attempts for job in Job.objects.all()} == {1}
    print(f"\nbatching worker: 8 jobs, batches {batches} (the rest one at a time)")
    worker.stop()


def test_jobs_of_a_batching_worker_killed_mid_batch_complete_once_after_a_restart(start_worker, client):
    worker = start_worker("batch-killed", env=BATCHING, pool_args=THREADS)
    data = large_photo()
    ids = []
    for _ in range(4):
        response = client.submit(data, "large.jpg", task="semantic")
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    running = wait_for_status(ids[0], {"running", "succeeded"}, timeout=60)
    assert running.status == "running", "the job finished before the kill; the window is too small"
    worker.kill()
    interrupted = [job_id for job_id in ids if Job.objects.get(pk=job_id).status == "running"]
    assert interrupted

    restarted = start_worker("batch-killed", env=BATCHING, pool_args=THREADS)
    done = [wait_for_status(job_id, {"succeeded", "failed", "canceled"}, timeout=180) for job_id in ids]
    assert [job.status for job in done] == ["succeeded"] * 4, [job.error_message for job in done]
    for job in done:  # each recovered on its own: a second attempt for those the kill cut short
        assert job.attempts == (2 if str(job.pk) in interrupted else 1)
    time.sleep(2)  # a late redelivery of a first message must be a no-op
    assert [Job.objects.get(pk=job.pk).finished_at for job in done] == [job.finished_at for job in done]
    print(f"\nbatching worker SIGKILLed with {len(interrupted)} of 4 jobs running: all 4 succeeded once")
    restarted.stop()
