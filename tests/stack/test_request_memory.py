"""What one hostile request can cost a web process: image bombs are checked from their
header, JSON that would expand is refused on its shape, long lists on their length.

Measured on real gunicorn processes (the Procfile's two, eight threads each), by their
resident memory: each process's peak is reset first (/proc/PID/clear_refs), so the figure
is how far above its resting size the requests pushed it.
"""

import collections
import concurrent.futures
import time
from pathlib import Path

import pytest
import requests

from tests.security.mutations import png

pytestmark = pytest.mark.faults

MB = 1024 * 1024
CONCURRENT = 8
BOMBS = {
    # 155 KB and 78 KB files; a full decode in the request took ~1 GB and ~730 MB.
    "8000x5000 RGBA PNG": lambda: png(8000, 5000, 6, 8),
    "8000x5000 16-bit grey PNG": lambda: png(8000, 5000, 0, 16),
}


class Resident:
    """Some processes' resident memory: reset each one's peak, then read how far above its
    size at the reset it went (summed over the processes)."""

    def __init__(self, *processes):
        self.pids = [pid for process in processes for pid in (process.pid, *process.children())]
        for pid in self.pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        self.resting = sum(self._read(pid, "VmRSS") for pid in self.pids)

    def growth(self):
        return sum(self._read(pid, "VmHWM") for pid in self.pids) - self.resting

    @staticmethod
    def _read(pid, field):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for process {pid}")


@pytest.fixture
def web(stack):
    web = stack.start_web(workers=2)
    web.worker = stack.start_worker()
    web.client = stack.client(stack.tokens["alice"])
    session = requests.Session()
    session.headers["Authorization"] = f"Token {stack.tokens['alice']}"
    # Warm both processes up (imports, first connections) so the measure is the requests'.
    for _ in range(8):
        session.get(f"{web.url}/api/v1/jobs/", timeout=10).raise_for_status()
    web.session = session
    return web


@pytest.mark.parametrize("name", list(BOMBS))
def test_eight_concurrent_image_bombs_cost_the_web_processes_little(web, name, figure):
    data = BOMBS[name]()

    def upload(index):
        return web.session.post(
            f"{web.url}/api/v1/jobs/",
            files={"image": (f"bomb{index}.png", data, "image/png")},
            data={"task": "semantic"},
            timeout=60,
        )

    resident, worker = Resident(web), Resident(web.worker)
    with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
        responses = list(pool.map(upload, range(CONCURRENT)))
    growth = resident.growth()
    statuses = sorted(response.status_code for response in responses)
    assert all(status == 202 or 400 <= status < 500 for status in statuses), statuses
    assert growth < 400 * MB
    # The worker decodes them in full, one at a time: each a job that ends.
    job_ids = [response.json()["id"] for response in responses if response.status_code == 202]
    ended = collections.Counter(job["status"] for job in web.client.wait_all(job_ids, timeout=600).values())
    figure(
        f"{CONCURRENT} concurrent uploads of a {len(data) // 1024} KB {name}: {statuses.count(202)} jobs, "
        f"{len(statuses) - statuses.count(202)} refused; the web processes grew {growth / MB:.0f} MB; "
        f"the worker ran them one at a time ({dict(ended)}), {worker.growth() / MB:.0f} MB above its rest"
    )


def test_a_20_mb_json_body_of_empty_objects_is_refused_before_it_expands(web, figure):
    body = b"[" + b"{}," * (20 * 1000 * 1000 // 3) + b"{}]"
    resident = Resident(web)
    started = time.monotonic()
    response = web.session.post(
        f"{web.url}/semantic", data=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    elapsed = time.monotonic() - started
    growth = resident.growth()
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_request"
    assert growth < 100 * MB
    figure(
        f"a {len(body) / 1e6:.0f} MB JSON body of empty objects to /semantic: 400 in {elapsed:.2f} s "
        f"(upload included); the web processes grew {growth / MB:.0f} MB"
    )


def test_a_4_mb_classes_field_is_refused_on_its_length(web, photo, figure):
    classes = "person," * 600_000
    started = time.monotonic()
    response = web.session.post(
        f"{web.url}/api/v1/jobs/",
        files={"image": ("photo.jpg", photo)},
        data={"task": "semantic", "classes": classes},
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 400 and "no more than 100" in response.json()["error"]["message"]
    figure(
        f"a {len(classes) / 1e6:.1f} MB classes field through gunicorn: 400 in {elapsed:.2f} s (upload included)"
    )
