"""Workers send task events (what Flower shows): `celery events --dump`, Celery's own event
consumer, sees a job's task sent, started and succeeded, under the job's id."""

import re
import time

import pytest

from tests.processes import CELERY, ServiceProcess

pytestmark = pytest.mark.faults


def test_a_jobs_task_events_reach_an_event_consumer(stack, photo):
    stack.start_web()
    stack.start_worker("worker")
    events = ServiceProcess("events", [*CELERY, "events", "--dump"], stack.env, stack.folder / "events.log")
    stack.processes.append(events)
    events.start()
    # Subscribed before the job is sent: it has heard the worker's heartbeat (every 2 s). A
    # fixed wait was too short on a busy machine, and the "sent" event went unheard.
    deadline = time.monotonic() + 60
    while "heartbeat" not in events.log():
        assert time.monotonic() < deadline, events.log()[-3000:]
        time.sleep(0.3)
    job_id = stack.client(stack.tokens["alice"]).submit_until_accepted(photo)[0]
    deadline = time.monotonic() + 60
    while f"task succeeded: workers.tasks.segment({job_id})" not in events.log():
        assert time.monotonic() < deadline, events.log()[-3000:]
        time.sleep(0.3)
    kinds = re.findall(rf"\] task (\w+): workers\.tasks\.segment\({job_id}\)", events.log())
    # "sent" comes from the web process and the rest from the worker: two publishers, so the
    # consumer may hear "sent" after the worker has started (it did in CI). Only the worker's
    # own events have an order to keep.
    assert sorted(kinds) == sorted(["sent", "received", "started", "succeeded"])
    assert [kind for kind in kinds if kind != "sent"] == ["received", "started", "succeeded"]
