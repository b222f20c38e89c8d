"""Redis stopped for 30 s mid-run and started again empty: every job ends succeeded."""

import time

import pytest

pytestmark = pytest.mark.faults

OUTAGE = 30
BATCH = 12


def test_jobs_from_before_during_and_after_a_redis_outage_all_succeed(stack, redis_server, photo, figure):
    stack.start_web()
    stack.start_io()
    stack.start_beat()
    stack.start_worker("worker")
    client = stack.client(stack.tokens["alice"])

    # Before: a batch, most of it still waiting in Redis when Redis goes.
    before = [client.submit_until_accepted(photo)[0] for _ in range(BATCH)]
    redis_server.stop()  # no persistence: every queued message is lost with it
    down_since = time.monotonic()
    lost = sum(stack.job_row(job_id)[0] == "queued" for job_id in before)
    assert lost, "every job had already run: nothing was waiting in Redis to lose"

    # During: each submit is refused with a clear 503 and a Retry-After; nothing is stored.
    # Reading a job (the database) still works.
    refused, other_errors, keys = 0, [], []
    while time.monotonic() - down_since < OUTAGE:
        keys.append(f"during-{len(keys)}")
        response = client.submit(photo, key=keys[-1])
        if response.status_code == 503 and response.json()["error"]["code"] == "queue_unavailable":
            assert int(response.headers["Retry-After"]) > 0
            refused += 1
        else:
            other_errors.append((response.status_code, response.text))
        assert client.job(before[0])["id"] == before[0]
        time.sleep(2)
    assert refused == len(keys) and other_errors == []

    redis_server.start()
    back_at = time.monotonic()
    # The clients retry what was refused, with the same keys, and carry on submitting.
    during = [client.submit_until_accepted(photo, key=key)[0] for key in keys]
    after = [client.submit_until_accepted(photo)[0] for _ in range(BATCH)]

    jobs = client.wait_all(before + during + after, timeout=240)
    recovered = time.monotonic() - back_at
    statuses = {job_id: job["status"] for job_id, job in jobs.items()}
    assert set(statuses.values()) == {"succeeded"}, statuses
    assert len(set(during)) == len(keys)  # one job per refused submit, however often retried
    assert set(stack.successes().values()) == {1}
    resent = stack.reaped()["resent"]
    figure(
        f"Redis stopped {OUTAGE} s and restarted empty: before {BATCH}/{BATCH} succeeded ({lost} of "
        f"them lost with Redis; the reaper found it empty and sent all {resent} queued jobs again, "
        f"the copies no-ops), during {len(keys)} submits answered 503 "
        f"queue_unavailable, then {len(during)}/{len(keys)} succeeded on retry, after {BATCH}/{BATCH} "
        f"succeeded; all done {recovered:.0f} s after Redis returned"
    )
