"""`make run WORKERS=3`, as a developer runs it: web, three light workers, the io worker
and beat under honcho. Jobs spread over the three; /readyz and /metrics tell the truth."""

import collections
import re
import time

import pytest
import requests

from tests.processes import ServiceProcess
from tests.stack.servers import free_port
from tests.stack.stack import ApiClient

pytestmark = pytest.mark.e2e

JOBS = 30


class MakeRun(ServiceProcess):
    def __init__(self, env, log_path, workers):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(
            "make run", ["make", "run", f"WORKERS={workers}", f"PORT={self.port}"], env, log_path
        )

    def ready(self):
        try:
            ready = requests.get(f"{self.url}/readyz", timeout=5).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still booting
            return False
        self.started_in = time.monotonic() - self.launched
        return ready

    def start(self, **options):
        self.launched = time.monotonic()
        return super().start(**options)


def announced(service):
    ready = requests.get(f"{service.url}/readyz", timeout=5).json()
    return sorted({w.split("@")[0] for m in ready["checks"]["models"].values() for w in m["workers"]})


def test_make_run_with_three_workers_spreads_jobs_and_counts_them(stack, photo, figure):
    service = MakeRun(stack.env, stack.folder / "make-run.log", workers=3)
    stack.processes.append(service)
    service.start(timeout=180)  # until /readyz is 200 (tests/stack/test_readiness.py: before)
    # Ready means one warm worker per model; wait for all three before spreading jobs.
    deadline = time.monotonic() + 60
    while (workers := announced(service)) != ["worker.1", "worker.2", "worker.3"]:
        assert time.monotonic() < deadline, f"workers announced: {workers}"
        time.sleep(0.2)

    client = ApiClient(service.url, stack.tokens["alice"])
    job_ids = [client.submit_until_accepted(photo)[0] for _ in range(JOBS)]
    jobs = client.wait_all(job_ids, timeout=240)
    assert collections.Counter(job["status"] for job in jobs.values()) == {"succeeded": JOBS}
    per_worker = collections.Counter(stack.job_row(job_id)[3].split("@")[0] for job_id in job_ids)
    assert sorted(per_worker) == ["worker.1", "worker.2", "worker.3"], per_worker

    model = jobs[job_ids[0]]["model"]
    text = requests.get(f"{service.url}/metrics", timeout=5).text
    succeeded = re.search(rf'segment_jobs_finished_total{{model="{model}",status="succeeded"}} (\S+)', text)
    assert succeeded and float(succeeded.group(1)) == JOBS, text
    figure(
        f"make run WORKERS=3: ready in {service.started_in:.0f} s; {JOBS} jobs succeeded, per worker {dict(sorted(per_worker.items()))}; /metrics: "
        f"{float(succeeded.group(1)):.0f} succeeded for {model}, summed over the 3 workers"
    )
