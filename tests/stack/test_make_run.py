"""`make run WORKERS=3`, as a developer runs it: web, three light workers, the io worker
and beat under honcho. Jobs spread over the three; /readyz and /metrics tell the truth."""

import collections
import re
import time

import pytest
import requests

from tests.stack.make_run import MakeRun, announced
from tests.stack.stack import ApiClient

pytestmark = pytest.mark.e2e

JOBS = 30


def test_make_run_with_three_workers_spreads_jobs_and_counts_them(stack, photo, figure):
    stack.env["METRICS_TOKEN"] = "metrics-for-the-test"
    service = MakeRun(stack.env, stack.folder / "make-run.log", workers=3)
    stack.processes.append(service)
    service.start(timeout=180)  # until /readyz is 200 (tests/stack/test_readiness.py: before)
    # Ready means one warm worker per model; wait for all three before spreading jobs.
    deadline = time.monotonic() + 60
    while (workers := announced(service, stack.tokens["alice"])) != ["worker.1", "worker.2", "worker.3"]:
        assert time.monotonic() < deadline, f"workers announced: {workers}"
        time.sleep(0.2)

    client = ApiClient(service.url, stack.tokens["alice"])
    job_ids = [client.submit_until_accepted(photo)[0] for _ in range(JOBS)]
    jobs = client.wait_all(job_ids, timeout=240)
    assert collections.Counter(job["status"] for job in jobs.values()) == {"succeeded": JOBS}
    per_worker = collections.Counter(stack.job_row(job_id)[3].split("@")[0] for job_id in job_ids)
    assert sorted(per_worker) == ["worker.1", "worker.2", "worker.3"], per_worker

    model = jobs[job_ids[0]]["model"]
    metrics = requests.get(
        f"{service.url}/metrics", headers={"Authorization": "Bearer metrics-for-the-test"}, timeout=5
    )
    text = metrics.text
    succeeded = re.search(rf'segment_jobs_finished_total{{model="{model}",status="succeeded"}} (\S+)', text)
    assert succeeded and float(succeeded.group(1)) == JOBS, text
    figure(
        f"make run WORKERS=3: ready in {service.started_in:.0f} s; {JOBS} jobs succeeded, per worker {dict(sorted(per_worker.items()))}; /metrics: "
        f"{float(succeeded.group(1)):.0f} succeeded for {model}, summed over the 3 workers"
    )


def test_make_run_on_rabbitmq_completes_40_jobs_through_a_sigkill_of_everything(rabbit_stack, photo, figure):
    """`make run` with CELERY_BROKER_URL=amqp://...: every process of the service SIGKILLed
    at once mid-run (a host losing power), then `make run` again: all 40 jobs succeed, once."""
    stack = rabbit_stack
    service = MakeRun(stack.env, stack.folder / "make-run-amqp.log", workers=1)
    stack.processes.append(service)
    service.start(timeout=180)
    client = ApiClient(service.url, stack.tokens["alice"])
    job_ids = [client.submit_until_accepted(photo)[0] for _ in range(40)]
    deadline = time.monotonic() + 120
    while (statuses := client.statuses(job_ids))["succeeded"] < 10:
        assert time.monotonic() < deadline, statuses
        time.sleep(0.1)

    killed = service.kill_everything()
    at_kill = collections.Counter(stack.job_row(job_id)[0] for job_id in job_ids)
    service.start(timeout=180)
    jobs = client.wait_all(job_ids, timeout=300)

    successes = collections.Counter(re.findall(r"job ([0-9a-f-]{36}) succeeded", service.log()))
    figure(
        f"make run on RabbitMQ, 40 jobs, all {killed} processes SIGKILLed at once when the jobs were "
        f"{dict(at_kill)}, then make run again (ready in {service.started_in:.0f} s): "
        f"{collections.Counter(job['status'] for job in jobs.values())['succeeded']}/40 succeeded, "
        f"{sum(count > 1 for count in successes.values())} recorded twice"
    )
    assert {job["status"] for job in jobs.values()} == {"succeeded"}
    assert at_kill["queued"] > 0, "every job had run before the kill: it proves nothing"
    assert sorted(successes) == sorted(job_ids) and set(successes.values()) == {1}
