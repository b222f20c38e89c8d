"""/readyz follows the workers: 503 before one has loaded its models, 200 once it has,
503 again soon after it dies (its announcement expires; nobody has to clean up)."""

import time

import pytest
import requests

from core.serving import TTL_SECONDS

pytestmark = pytest.mark.e2e


def readyz(web):
    response = requests.get(f"{web.url}/readyz", timeout=10)
    return response.status_code, response.json()


def wait_for_status(web, status, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if readyz(web)[0] == status:
            return time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"/readyz not {status} after {timeout}s: {readyz(web)}")


def test_readyz_is_503_until_a_worker_has_loaded_its_models_and_again_once_it_dies(stack, figure):
    web = stack.start_web()
    status, body = readyz(web)
    assert status == 503 and body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    required = [name for name, model in body["checks"]["models"].items() if model["required"]]
    assert required and all(body["checks"]["models"][name]["workers"] == 0 for name in required)

    launched = time.monotonic()
    worker = stack.start_worker("light-1")
    ready_at = wait_for_status(web, 200, timeout=120)
    body = readyz(web)[1]
    # What is required follows what is served: now the light models, one per task.
    required = [name for name, model in body["checks"]["models"].items() if model["required"]]
    assert len(required) == 3
    assert all(body["checks"]["models"][name]["workers"] == 1 for name in required)

    worker.kill()
    killed = time.monotonic()
    gone_at = wait_for_status(web, 503, timeout=TTL_SECONDS + 10)
    figure(
        f"/readyz: 503 with no worker; 200 {ready_at - launched:.1f} s after a worker started "
        f"(models loaded and warmed up); 503 again {gone_at - killed:.1f} s after it was SIGKILLed "
        f"(announcements live {TTL_SECONDS} s)"
    )
