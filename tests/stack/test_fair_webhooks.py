"""One user's 200 webhook jobs aimed at an address that never answers, then another user's
one job with a live receiver: the second user's webhook arrives within seconds of its job,
not hours behind the first user's, and the reaper keeps its schedule throughout."""

import re
import time
from datetime import datetime

import psycopg
import pytest

from tests.jobs.receivers import ScriptedReceiver, SilentReceiver

pytestmark = pytest.mark.faults

FLOOD = 200
# Celery's line for each reaper pass, after the time Django's log format writes first.
REAPER_PASS = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO celery\.app\.trace Task jobs\.tasks\.reap_jobs\[[^\]]+\] succeeded",
    re.MULTILINE,
)


def attempts_under_way(stack, username):
    """The user's claimed attempts whose lease runs (outbox._attempts_under_way, in SQL)."""
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        return conn.execute(
            "SELECT count(*) FROM jobs_webhookdelivery d JOIN jobs_job j ON j.id = d.job_id "
            "JOIN auth_user u ON u.id = j.owner_id WHERE u.username = %s AND d.state = 'pending' "
            "AND d.claim IS NOT NULL AND d.next_attempt_at > now()",
            (username,),
        ).fetchone()[0]


def test_a_users_flood_of_hung_webhooks_delays_nobody_elses_nor_the_reaper(stack, photo, figure):
    blackhole = SilentReceiver()  # the kernel accepts connections; nothing ever answers
    receiver = ScriptedReceiver([200])
    try:
        # The real WEBHOOK_TIMEOUT (10 s) and retry schedule; 4 io threads (Stack.start_io).
        stack.env["WEBHOOK_ALLOWED_HOSTS"] = f"127.0.0.1:{blackhole.port},127.0.0.1:{receiver.port}"
        stack.start_web()
        io = stack.start_io()
        housekeeping = stack.start_housekeeping()
        stack.start_beat()
        stack.start_worker("worker")
        alice, bob = stack.client(stack.tokens["alice"]), stack.client(stack.tokens["bob"])

        flood_started = time.time()
        for _ in range(FLOOD):
            response = alice.submit(photo, webhook_url=blackhole.url)
            assert response.status_code == 202, response.text
        response = bob.submit(photo, webhook_url=receiver.url)
        assert response.status_code == 202, response.text
        bobs_job = response.json()["id"]

        # Bob's job runs after alice's 200 (one light worker); his webhook follows it.
        arrived, alices_most, deadline = None, 0, time.monotonic() + 300
        while arrived is None:
            status = stack.job_row(bobs_job)[0]
            assert time.monotonic() < deadline, f"bob's job is {status}; his webhook has not arrived"
            if status == "succeeded":  # from then on, 30 s at most
                deadline = min(deadline, time.monotonic() + 30)
            alices_most = max(alices_most, attempts_under_way(stack, "alice"))
            for _ in range(10):  # the receiver every 20 ms, the database every 0.2 s
                if receiver.requests:
                    arrived = time.time()
                    break
                time.sleep(0.02)
    finally:
        blackhole.close()  # the hung attempts end at once (reset), before the stack stops
        receiver.close()

    finished = datetime.fromisoformat(bob.job(bobs_job)["finished_at"]).timestamp()
    delay = arrived - finished
    passes = [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for stamp in REAPER_PASS.findall(housekeeping.log())
    ]
    during = [moment for moment in passes if flood_started <= moment <= arrived]
    gaps = [later - earlier for earlier, later in zip(during, during[1:], strict=False)]
    longest = max(gaps, default=float("inf"))
    interval = int(stack.env["REAP_INTERVAL"])
    figure(
        f"{FLOOD} webhook jobs of one user to an address that never answers (10 s timeout, 4 io "
        f"threads), then one of another user's to a live receiver: delivered {delay:.2f} s after "
        f"its job finished, {arrived - flood_started:.0f} s into the flood; the first user had at "
        f"most {alices_most} attempts under way; the reaper (every {interval} s) passed "
        f"{len(during)} times meanwhile, longest gap {longest:.1f} s, all on the housekeeping worker"
    )
    assert delay < 5
    assert alices_most <= 2  # WEBHOOK_CONCURRENCY_PER_USER's default
    assert len(during) >= (arrived - flood_started) / interval / 2 and longest < 3 * interval
    assert REAPER_PASS.findall(io.log()) == []
