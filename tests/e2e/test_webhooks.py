"""Webhooks and waiting, end to end: live server, a light worker, the webhooks worker, and
`manage.py webhook_receiver` verifying every delivery with the standardwebhooks library."""

import statistics
import time
from datetime import datetime

import pytest

from tests.conftest import eval_photo
from tests.jobs.receivers import SilentReceiver
from tests.stack.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# An exemption names one port, and the io worker reads it at start: the receivers of these
# tests listen on this port, one test at a time (start_receiver(..., port=RECEIVER_PORT)).
RECEIVER_PORT = free_port()
IO_ENV = {
    "WEBHOOK_ALLOWED_HOSTS": f"127.0.0.1:{RECEIVER_PORT}",
    "WEBHOOK_RETRY_DELAYS": "1,1,1",  # the real schedule starts at 5 s and spans a day
    "WEBHOOK_TIMEOUT": "5",
}


@pytest.fixture(scope="module")
def hung():
    """A receiver that never answers (the kernel accepts, nobody reads), made before the io
    worker so that its port can be exempted."""
    silent = SilentReceiver()
    yield silent
    silent.close()


def exemptions(hung):
    return [f"127.0.0.1:{RECEIVER_PORT}", f"127.0.0.1:{hung.port}"]


@pytest.fixture(scope="module")
def workers(start_worker, hung):
    light = start_worker("hooks-light")
    io = start_worker(
        "hooks-io",
        queues="webhooks",
        env={**IO_ENV, "WEBHOOK_ALLOWED_HOSTS": ",".join(exemptions(hung))},
        pool_args=["--pool", "threads", "--concurrency", "8"],
    )
    yield light, io
    light.stop()
    io.stop()


@pytest.fixture(autouse=True)
def local_receivers_allowed(settings, hung):
    settings.WEBHOOK_ALLOWED_HOSTS = exemptions(hung)


@pytest.fixture
def photo():
    return eval_photo("photos/astronaut.jpg").read_bytes()


def secret_of(client):
    return client.get("/api/v1/account/").json()["webhook_secret"]


def test_each_job_gets_exactly_one_verified_completed_delivery(workers, client, start_receiver, photo):
    receiver = start_receiver(secret_of(client), port=RECEIVER_PORT)
    ids = [client.submit(photo, task="semantic", webhook_url=receiver.url).json()["id"] for _ in range(3)]
    receiver.wait_for(3)
    time.sleep(2)  # room for a duplicate to arrive, if there were one
    deliveries = receiver.deliveries()
    assert sorted(d["payload"]["id"] for d in deliveries) == sorted(ids)
    assert all(d["answered"] == 200 and d["payload"]["status"] == "succeeded" for d in deliveries)
    assert len({d["webhook_id"] for d in deliveries}) == 3
    for delivered in deliveries:
        job = client.get(f"/api/v1/jobs/{delivered['payload']['id']}/").json()
        [delivery] = job["webhook_deliveries"]
        assert delivery["id"] == delivered["webhook_id"] and delivery["event"] == "completed"
        assert delivery["state"] == "delivered" and [a["status_code"] for a in delivery["attempts"]] == [200]
        assert delivered["payload"]["result"]["summary"] == job["result"]["summary"]
    print(f"\n3 jobs, {len(deliveries)} verified deliveries, one per job")


def test_running_and_completed_arrive_in_order(workers, client, start_receiver, photo):
    receiver = start_receiver(secret_of(client), port=RECEIVER_PORT)
    job_id = client.submit(
        photo, task="semantic", webhook_url=receiver.url, webhook_events="running,completed"
    ).json()["id"]
    receiver.wait_for(2)
    time.sleep(1)
    deliveries = receiver.deliveries()
    assert [(d["payload"]["id"], d["payload"]["status"]) for d in deliveries] == [
        (job_id, "running"),
        (job_id, "succeeded"),
    ]
    events = [d["event"] for d in client.get(f"/api/v1/jobs/{job_id}/").json()["webhook_deliveries"]]
    assert events == ["running", "completed"]


def test_a_receiver_failing_twice_gets_the_delivery_on_the_third_attempt(
    workers, client, start_receiver, photo, admin_client
):
    receiver = start_receiver(secret_of(client), fail=2, port=RECEIVER_PORT)
    job_id = client.submit(photo, task="semantic", webhook_url=receiver.url).json()["id"]
    receiver.wait_for(1)
    seen = receiver.deliveries()
    assert [d["answered"] for d in seen] == [500, 500, 200]
    assert len({d["webhook_id"] for d in seen}) == 1
    assert seen[0]["timestamp"] <= seen[1]["timestamp"] <= seen[2]["timestamp"]
    [delivery] = client.get(f"/api/v1/jobs/{job_id}/").json()["webhook_deliveries"]
    assert delivery["state"] == "delivered"
    assert [(a["number"], a["status_code"]) for a in delivery["attempts"]] == [(1, 500), (2, 500), (3, 200)]
    assert delivery["attempts"][0]["response_body"] == "failing on purpose"
    page = admin_client.get(f"/admin/jobs/job/{job_id}/change/").content.decode()
    assert page.count("<td>500</td>") == 2 and page.count("<td>200</td>") == 1
    gaps = [
        (datetime.fromisoformat(b["started_at"]) - datetime.fromisoformat(a["started_at"])).total_seconds()
        for a, b in zip(delivery["attempts"], delivery["attempts"][1:], strict=False)
    ]
    print(f"\nattempts 500, 500, 200; seconds between attempts {gaps} (schedule 1 s)")


def test_waiting_returns_the_finished_job_in_one_request(workers, client, photo):
    started = time.monotonic()
    response = client.submit(photo, task="semantic", headers={"Prefer": "wait=30"})
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "succeeded" and job["result"]["files"]["mask"]
    assert response.headers["Preference-Applied"] == "wait=30"
    chelsea = eval_photo("photos/chelsea.jpg").read_bytes()
    response = client.submit(chelsea, task="instance", params={"wait": "30"})
    assert response.status_code == 201 and response.json()["status"] == "succeeded"
    assert any(i["label"] == "cat" for i in response.json()["result"]["summary"]["instances"])
    print(f"\nPrefer: wait=30 -> 201 succeeded in {elapsed * 1000:.0f} ms, one request")


def test_a_hung_receiver_does_not_slow_the_model_worker(workers, client, photo, hung):
    def run_batch(**fields):
        ids = [client.submit(photo, task="semantic", **fields).json()["id"] for _ in range(8)]
        jobs = [client.wait(f"/api/v1/jobs/{job_id}/") for job_id in ids]
        assert all(job["status"] == "succeeded" for job in jobs)
        return [
            (
                datetime.fromisoformat(j["finished_at"]) - datetime.fromisoformat(j["started_at"])
            ).total_seconds()
            * 1000
            for j in jobs
        ]

    without = run_batch()
    try:  # each attempt to the hung receiver hangs for its whole 5 s
        started = time.monotonic()
        with_hung = run_batch(webhook_url=hung.url)
        batch_seconds = time.monotonic() - started
        # Every job finished while its delivery's first attempt was still hanging.
        recent = client.get("/api/v1/jobs/?page_size=8").json()["results"]
        assert all(job["webhook_deliveries"][0]["attempts"] == [] for job in recent)
    finally:
        hung.close()
    # The io worker must be idle before the test database is flushed under it: closing the
    # port resets the hanging attempts, and the 1 s retries to a closed port fail fast.
    settle_deadline = time.monotonic() + 60
    while time.monotonic() < settle_deadline:
        recent = client.get("/api/v1/jobs/?page_size=8").json()["results"]
        if all(job["webhook_deliveries"][0]["state"] == "failed" for job in recent):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the deliveries to the closed receiver did not settle within 60 s")
    median_without, median_with = statistics.median(without), statistics.median(with_hung)
    print(
        f"\nworker time per job (started->finished), median of 8: {median_without:.0f} ms without a webhook, "
        f"{median_with:.0f} ms with a receiver that never answers; 8 jobs in {batch_seconds:.1f} s "
        f"while their 8 deliveries hung, two at a time, or waited their turn"
    )
    assert batch_seconds < 5  # less than one attempt's timeout: nothing waited on the receiver
    assert median_with < 2 * median_without + 100


def test_a_worker_mixing_webhooks_with_model_queues_refuses_to_start(start_worker):
    worker = start_worker("mixed-io", queues="light,webhooks", expect_ready=False, timeout=60)
    worker.process.wait(timeout=60)
    assert worker.process.returncode != 0
    assert "never run in a model worker" in worker.log()
