"""A worker SIGKILLed mid-job: started again, it finishes the job, exactly once."""

import io
import time

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from jobs.models import Job
from tests.conftest import eval_photo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def large_photo():
    """The astronaut at 6000x6000 (36 MP): seconds of decode and render, a wide window."""
    image = Image.open(eval_photo("photos/astronaut.jpg")).resize((6000, 6000), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def wait_for_status(job_id, statuses, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout}s")


def test_a_job_whose_worker_is_killed_completes_once_after_a_restart(start_worker, client):
    worker = start_worker("killed")
    response = client.submit(large_photo(), "large.jpg", task="semantic")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]

    # 1. Kill the whole worker (main process and pool child) while the job runs.
    running = wait_for_status(job_id, {"running", "succeeded"}, timeout=60)
    assert running.status == "running", "the job finished before the kill; the window is too small"
    assert running.worker.startswith("killed@"), f"claimed by {running.worker}, not the worker under test"
    worker.kill()
    time.sleep(1)
    assert Job.objects.get(pk=job_id).status == "running"  # orphaned: nobody will finish it

    # 2. Start a worker under the same name: it requeues its orphan and runs it.
    started = time.monotonic()
    restarted = start_worker("killed")
    done = wait_for_status(job_id, {"succeeded", "failed", "canceled"}, timeout=120)
    assert done.status == "succeeded", done.error_message
    assert done.attempts == 2 and done.worker == running.worker
    assert sorted(default_storage.listdir(f"jobs/{job_id}")[1]) == ["input.jpg", "mask.png", "overlay.jpg"]
    assert "requeued 1 job(s) orphaned" in restarted.log()
    print(
        f"\nkilled mid-job, restarted: succeeded {time.monotonic() - started:.1f} s after the restart, "
        f"attempts={done.attempts}"
    )

    # 3. Once: nothing runs it again (a late redelivery of the first message is a no-op).
    time.sleep(2)
    again = Job.objects.get(pk=job_id)
    assert again.attempts == 2 and again.finished_at == done.finished_at
    restarted.stop()
