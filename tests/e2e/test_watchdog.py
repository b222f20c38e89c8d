"""A batching worker whose runtime call hangs stops itself (workers/watchdog.py): its job
fails with `timeout`, its announcement goes, and it exits instead of timing out every later
job of the model. The hang is injected into LiteRT's run() (tests/e2e/hung_runtime)."""

import os
import time

import pytest

from core import serving
from jobs.models import Job
from tests.conftest import eval_photo
from tests.processes import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HUNG_RUNTIME = REPO / "tests" / "e2e" / "hung_runtime"


def test_a_batching_worker_whose_runtime_call_hangs_stops_itself(start_worker, client, tmp_path):
    flag = tmp_path / "hang"
    env = {
        "PYTHONPATH": os.pathsep.join([str(HUNG_RUNTIME), str(REPO)]),
        "SEGMENT_TEST_HANG_FILE": str(flag),
        "JOB_TIME_LIMIT": "10",  # the least it may be
        "BATCH_MAX": "2",
    }
    worker = start_worker("hung", env=env, pool_args=["--pool", "threads", "--concurrency", "2"])
    flag.touch()  # from now on every runtime call hangs
    try:
        response = client.submit(eval_photo("photos/chelsea.jpg").read_bytes(), task="semantic")
        assert response.status_code == 202, response.text
        started = time.monotonic()
        job = client.wait(response.headers["Location"], timeout=60)
        assert job["status"] == "failed" and job["error"]["code"] == "timeout", job
        deadline = time.monotonic() + 60
        while worker.alive():
            assert time.monotonic() < deadline, f"the worker is still running:\n{worker.log()[-3000:]}"
            time.sleep(0.2)
        stopped = time.monotonic() - started
    finally:
        flag.unlink(missing_ok=True)
    assert "a runtime call has not returned within the job time limit" in worker.log()
    serving.forget()
    assert not any(
        name.startswith("hung@") for served in serving.served().values() for name in served.workers
    )
    assert Job.objects.get().attempts == 1
    print(f"\nhung runtime: job failed `timeout`, worker stopped itself {stopped:.0f} s after the submit")
