"""A batch end to end: ten photos in one request, two light workers, the webhooks worker,
and one `batch.completed` verified by `manage.py webhook_receiver`."""

import io
import time
from datetime import datetime

import pytest
from PIL import Image

from jobs.models import Job
from tests.conftest import eval_photo
from tests.stack.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The io worker reads its exemption at start: the receiver listens on this port.
RECEIVER_PORT = free_port()
ALLOWED = f"127.0.0.1:{RECEIVER_PORT}"


@pytest.fixture(scope="module")
def workers(start_worker):
    # Two model workers, so that jobs of the batch end at the same moment on two of them.
    started = [start_worker(f"batch-light-{n}", env={"INFERENCE_THREADS": "1"}) for n in (1, 2)]
    started.append(
        start_worker(
            "batch-io",
            queues="webhooks",
            env={"WEBHOOK_ALLOWED_HOSTS": ALLOWED},
            pool_args=["--pool", "threads", "--concurrency", "4"],
        )
    )
    yield started
    for worker in started:
        worker.stop()


@pytest.fixture(autouse=True)
def local_receiver_allowed(settings):
    settings.WEBHOOK_ALLOWED_HOSTS = [ALLOWED]


def ten_photos():
    """The astronaut and the cat, each five times at 100% down to 60% of its size."""
    photos = []
    for index in range(10):
        source = Image.open(eval_photo(("photos/astronaut.jpg", "photos/chelsea.jpg")[index % 2]))
        scale = 1.0 - 0.1 * (index // 2)
        resized = source.resize((round(source.width * scale), round(source.height * scale)))
        buffer = io.BytesIO()
        resized.convert("RGB").save(buffer, "JPEG", quality=90)
        photos.append((f"photo{index}.jpg", buffer.getvalue()))
    return photos


def test_a_batch_of_ten_photos_ends_with_one_verified_batch_completed(
    workers, client, start_receiver, figure
):
    secret = client.get("/api/v1/account/").json()["webhook_secret"]
    receiver = start_receiver(secret, port=RECEIVER_PORT)
    started = time.monotonic()
    response = client.session.post(
        f"{client.base_url}/api/v1/batches/",
        files=[("image", photo) for photo in ten_photos()],
        data={"task": "semantic", "webhook_url": receiver.url},
        timeout=90,
    )
    assert response.status_code == 202, response.text
    batch = response.json()
    assert len(batch["jobs"]) == 10 and response.headers["Location"] == batch["url"]

    [delivered] = receiver.wait_for(1, timeout=120)
    arrived = time.monotonic() - started
    time.sleep(2)  # room for a second one to arrive, if there were one
    deliveries = receiver.deliveries()
    assert len(deliveries) == 1 and deliveries[0]["answered"] == 200
    payload = delivered["payload"]
    assert payload["id"] == batch["id"] and payload["status"] == "finished"
    assert payload["counts"]["succeeded"] == 10
    assert [job["id"] for job in payload["jobs"]] == [job["id"] for job in batch["jobs"]]

    jobs = [client.get(job["url"]).json() for job in batch["jobs"]]
    assert all(job["status"] == "succeeded" and job["result"]["files"]["mask"] for job in jobs)
    assert [job["input"]["filename"] for job in jobs] == [f"photo{i}.jpg" for i in range(10)]
    assert len({tuple(job["result"]["summary"]["image_size"]) for job in jobs}) == 10  # ten sizes
    shown = client.get(batch["url"]).json()
    [delivery] = shown["webhook_deliveries"]
    assert delivery["id"] == delivered["webhook_id"] and delivery["state"] == "delivered"

    def at(text):
        return datetime.fromisoformat(text)

    span = (max(at(j["finished_at"]) for j in jobs) - min(at(j["created_at"]) for j in jobs)).total_seconds()
    nodes = set(Job.objects.filter(batch_id=batch["id"]).values_list("worker", flat=True))
    figure(
        f"batch of 10 photos on {len(nodes)} light workers: 10 succeeded in {span:.2f} s (first created "
        f"to last finished); {len(deliveries)} batch.completed webhook, verified, {arrived:.2f} s after "
        "the submit"
    )
