"""The file store (a real SeaweedFS) stopped for 30 s while 50 jobs go through: no job is
lost or stuck, every answer meanwhile is a clear one (503 with Retry-After where the store
is needed, never 500), and all 50 succeed once it is back."""

import collections
import time
import uuid

import pytest
import requests

from tests.fixtures.seaweedfs import SeaweedFS

pytestmark = pytest.mark.faults

JOBS = 50
OUTAGE = 30


@pytest.fixture
def store(tmp_path):
    """A SeaweedFS of this test's own: stopping it must not touch the session's."""
    server = SeaweedFS(tmp_path / "seaweedfs")
    server.bucket = f"outage-{uuid.uuid4().hex[:8]}"
    server.client().create_bucket(Bucket=server.bucket)
    yield server
    server.stop()


def test_fifty_jobs_through_a_30_s_store_outage_all_succeed(stack, store, photo, figure):
    stack.env.update(store.environment(store.bucket))
    stack.start_web()
    stack.start_io()
    stack.start_beat()
    stack.start_worker("worker")
    client = stack.client(stack.tokens["alice"])
    answers = collections.Counter()  # every answer the clients got, by status and code

    def submit(key):
        response = client.submit(photo, key=key)
        answers[(response.status_code, response.json().get("error", {}).get("code"))] += 1
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) > 0
        return response

    before = [client.submit_until_accepted(photo)[0] for _ in range(15)]
    client.wait_succeeded(before, 3, timeout=120, interval=0.2)
    finished = client.job(before[0])

    store.stop()  # SIGTERM: SeaweedFS takes a few seconds to go
    down_since = time.monotonic()
    keys = []
    downloads = collections.Counter()
    while time.monotonic() - down_since < OUTAGE:
        keys.append(f"during-{len(keys)}")
        submit(keys[-1])
        # Reading a job needs only the database; its files need the store.
        assert client.job(before[0])["status"] == "succeeded"
        download = requests.get(finished["result"]["files"]["mask"], timeout=30)
        downloads[
            (download.status_code, download.json()["error"]["code"] if download.status_code != 200 else "")
        ] += 1
        time.sleep(1.5)
    during_outage = client.statuses(before)
    # A delete needs no store: the row goes (204), its files wait for the orphan sweep. (One
    # of the 15, replaced by one more job below.)
    deleted = client.session.delete(f"{client.base_url}/api/v1/jobs/{before.pop(1)}/", timeout=30)
    assert deleted.status_code == 204, deleted.text
    store.start()
    back_at = time.monotonic()

    # The clients send what was refused again, with the same keys, then the rest.
    during = [client.submit_until_accepted(photo, key=key)[0] for key in keys]
    after = [client.submit_until_accepted(photo)[0] for _ in range(JOBS - len(before) - len(keys))]
    job_ids = before + during + after
    assert len(set(job_ids)) == JOBS
    jobs = client.wait_all(job_ids, timeout=300)
    recovered = time.monotonic() - back_at
    statuses = collections.Counter(job["status"] for job in jobs.values())
    # Jobs the worker took while the store was down went back to the queue, uncounted.
    released = stack.worker_logs().count("the file store is unreachable, queued again")
    attempts = collections.Counter(stack.job_row(job_id)[1] for job_id in job_ids)

    figure(
        f"SeaweedFS stopped {OUTAGE} s during {JOBS} jobs: {statuses['succeeded']}/{JOBS} succeeded, "
        f"all done {recovered:.0f} s after it returned; while down, the 15 from before were "
        f"{dict(during_outage)} ({released} attempts put back in the queue, every job recorded with "
        f"attempts {dict(attempts)}), {len(keys)} submits answered {dict(answers)}, downloads {dict(downloads)}; "
        f"no 500"
    )
    assert statuses == {"succeeded": JOBS}
    assert set(stack.successes().values()) == {1}
    assert released > 0 and attempts == {1: JOBS}
    assert all(status != 500 for status, _ in answers) and 500 not in {s for s, _ in downloads}
    assert answers[(503, "storage_unavailable")] == len(keys)
    assert set(downloads) == {(503, "storage_unavailable")}
    # Once back, the files of a job finished before the outage are there still.
    assert requests.get(finished["result"]["files"]["mask"], timeout=30).status_code == 200
