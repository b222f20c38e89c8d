"""A model worker keeps its database connection from job to job (DB_CONN_MAX_AGE), as the
web process does from request to request: Celery's Django fixup would otherwise open a new
one, a new PostgreSQL backend, for every task."""

import re

import pytest

from tests.stack.servers import wait_until

pytestmark = pytest.mark.faults

JOBS = 4


def test_a_worker_keeps_its_database_connection_from_job_to_job(stack, postgres, photo):
    stack.start_web()
    # Only the worker's connections carry this name, so the server's log can tell them apart.
    stack.env["DATABASE_URL"] += "?application_name=segment-test-worker"
    stack.start_worker("worker")
    client = stack.client(stack.tokens["alice"])
    client.wait_all([client.submit_until_accepted(photo)[0]])  # the first job connects
    postgres.execute("ALTER SYSTEM SET log_connections = on")
    postgres.execute("SELECT pg_reload_conf()")
    log = postgres.folder / "log"
    start = log.stat().st_size
    try:
        # The reload is a signal: wait until a new connection of ours is logged.
        wait_until(
            lambda: postgres.execute("SELECT 1") or "connection authorized" in tail(log, start),
            30,
            "log_connections never took effect",
        )
        jobs = client.wait_all([client.submit_until_accepted(photo)[0] for _ in range(JOBS)])
        logged = tail(log, start)
    finally:
        postgres.execute("ALTER SYSTEM RESET log_connections")
        postgres.execute("SELECT pg_reload_conf()")
    assert {job["status"] for job in jobs.values()} == {"succeeded"}
    opened = re.findall(r"connection authorized: .*application_name=segment-test-worker", logged)
    assert opened == [], f"{len(opened)} new worker connections over {JOBS} jobs"


def tail(log, start):
    return log.read_bytes()[start:].decode(errors="replace")
