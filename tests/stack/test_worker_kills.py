"""100 jobs while the model worker is SIGKILLed three times: all succeed, none twice."""

import time

import pytest

pytestmark = pytest.mark.faults

JOBS = 100
KILLS = 3


def wait_for_a_running_job(client, timeout=60):
    """A job mid-inference, so that each kill interrupts real work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = client.jobs(status="running")
        if running:
            return next(iter(running))
        time.sleep(0.02)
    raise AssertionError("no job was running")


def kill_mid_job(stack, worker, client, tries):
    """SIGKILL the worker (the main process and its pool child, no cleanup) and start it again
    under its name, until a kill lands while a job runs: a job takes ~0.15 s, so the one seen
    running may finish before the kill lands. Returns (the interrupted job, kills made)."""
    for kills in range(1, tries + 1):
        job_id = wait_for_a_running_job(client)
        worker.kill()
        time.sleep(0.2)  # a COMMIT the pool child sent just before dying still lands
        landed = stack.job_row(job_id)[0] == "running"
        stack.restart(worker)  # same name: it requeues the job it was running
        if landed:
            return job_id, kills
    raise AssertionError(f"{tries} kills, none landed mid-job")


def test_a_hundred_jobs_survive_three_sigkills_of_their_worker(stack, photo, figure):
    stack.start_web()
    # The reaper's safety net: a kill that lands after the worker took a message but before
    # it claimed the job leaves the job queued and its message unacknowledged (Redis hands
    # it out again only after the visibility timeout); the reaper sends it again.
    stack.start_io()
    stack.start_beat()
    worker = stack.start_worker("worker")
    client = stack.client(stack.tokens["alice"])

    job_ids = [client.submit_until_accepted(photo)[0] for _ in range(JOBS)]
    started = time.monotonic()
    interrupted, kills = [], 0
    for kill in range(KILLS):
        # Spread the kills over the run: after roughly a quarter, a half, three quarters.
        client.wait_succeeded(job_ids, JOBS * (kill + 1) // (KILLS + 1), timeout=180)
        job_id, made = kill_mid_job(stack, worker, client, tries=4 * KILLS - kills)
        interrupted.append(job_id)
        kills += made

    jobs = client.wait_all(job_ids, timeout=300)
    elapsed = time.monotonic() - started
    statuses = {job_id: job["status"] for job_id, job in jobs.items()}
    assert list(statuses.values()).count("succeeded") == JOBS, statuses

    # None twice: no job's result was recorded more than once, over every life of the worker.
    # A kill that lands between a job's COMMIT and its log line loses only the line, so a job
    # may be missing from the log (the database says it succeeded), at most one per kill.
    successes = stack.successes()
    assert set(successes) <= set(job_ids) and set(successes.values()) == {1}, successes
    unlogged = set(job_ids) - set(successes)
    assert len(unlogged) <= kills, unlogged
    retried = {job_id for job_id, job in jobs.items() if job["attempts"] > 1}
    assert set(interrupted) <= retried, "a job that was killed mid-run was not run again"
    resent = stack.reaped()["resent"]
    figure(
        f"{JOBS} jobs, worker SIGKILLed {kills} times, {KILLS} of them mid-job: {JOBS} succeeded, "
        f"0 recorded twice, {len(retried)} rerun after a kill, {resent} resent by the reaper, {elapsed:.0f} s"
    )
