"""Two web processes, one request-rate limit: the counts live in Redis (CACHES), so a client
gets the configured rate in all, not that rate once per process it happens to reach."""

import pytest
import requests

pytestmark = pytest.mark.e2e

RATE = 6


def test_two_web_processes_count_one_users_requests_together(stack):
    stack.env["THROTTLE_USER_RATE"] = f"{RATE}/min"
    first = stack.start_web()
    second = stack.start_web()
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack.tokens['alice']}"
    # Alternate between the two, as a load balancer would.
    answers = [
        session.get(f"{web.url}/api/v1/jobs/", timeout=10).status_code
        for _ in range(RATE)
        for web in (first, second)
    ]
    assert answers == [200] * RATE + [429] * RATE
