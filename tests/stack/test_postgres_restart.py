"""PostgreSQL stopped and started again mid-run: the API answers 503 meanwhile and recovers
by itself, in the same process; every accepted job ends succeeded."""

import collections
import time

import pytest
import requests

from tests.stack.servers import wait_until

pytestmark = pytest.mark.faults

BATCH = 10
DOWN = 5


def test_the_service_recovers_from_a_postgres_restart_by_itself(stack, postgres, photo, figure):
    web = stack.start_web()
    stack.start_io()
    stack.start_beat()
    stack.start_worker("worker")
    client = stack.client(stack.tokens["alice"])
    web_workers = web.children()

    before = [client.submit_until_accepted(photo)[0] for _ in range(BATCH)]
    # Stop the database under a running job. The batch keeps one running nearly all the time,
    # so every 0.1 s is often enough, and a minute of it stays under the user's request rate.
    wait_until(lambda: client.jobs(status="running"), 60, "no job was running")
    postgres.stop()
    answers = collections.Counter()
    stopped = time.monotonic()
    while time.monotonic() - stopped < DOWN:
        # A timeout on every request too: a web worker stuck on the dead database would
        # otherwise hold this loop past its deadline for ever.
        read = client.session.get(f"{web.url}/api/v1/jobs/{before[0]}/", timeout=30)
        for response in (read, client.submit(photo)):
            answers[(response.status_code, response.json()["error"]["code"])] += 1
            if response.status_code == 503:
                assert int(response.headers["Retry-After"]) > 0
        time.sleep(0.2)
    postgres.start()
    restarted = time.monotonic()

    assert set(answers) == {(503, "database_unavailable")}, answers
    first_ok = wait_for_first_success(client, before[0])
    assert web.children() == web_workers, "the web worker was replaced: it did not recover by itself"
    after = [client.submit_until_accepted(photo)[0] for _ in range(BATCH)]
    jobs = client.wait_all(before + after, timeout=240)
    statuses = collections.Counter(job["status"] for job in jobs.values())
    assert statuses == {"succeeded": 2 * BATCH}, statuses
    assert set(stack.successes().values()) == {1}
    figure(
        f"PostgreSQL stopped {DOWN} s mid-run: {answers.total()} API requests answered 503 "
        f"database_unavailable, 0 other errors; the same web process answered 200 "
        f"{first_ok - restarted:.1f} s after the restart; {2 * BATCH}/{2 * BATCH} jobs succeeded"
    )


def wait_for_first_success(client, job_id, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.session.get(f"{client.base_url}/api/v1/jobs/{job_id}/", timeout=5).status_code == 200:
                return time.monotonic()
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the API did not recover within {timeout}s")
