"""`make run PROXY=nginx`, the production front: slow uploads are nginx's to hold, so status
reads keep answering; and the web process sees each client's real address, whatever the
client wrote in X-Forwarded-For itself."""

import http.client
import re
import shutil
import socket
import statistics
import threading
import time

import pytest
import requests

from tests.stack.make_run import MakeRun
from tests.stack.stack import ApiClient

pytestmark = pytest.mark.e2e

SLOW_UPLOADS = 50
BODY_BYTES = 1_000_000
ANONYMOUS_RATE = 4


class SlowUploads:
    """Connections that each start a 1 MB upload and then send 20 bytes a second: a phone on
    a bad network, or anyone who wants the web tier's threads."""

    def __init__(self, port, token, count):
        self.sockets = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(
                (
                    "POST /api/v1/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Token {token}\r\n"
                    "Content-Type: multipart/form-data; boundary=slowslowslow\r\n"
                    f"Content-Length: {BODY_BYTES}\r\n\r\n"
                    '--slowslowslow\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
                ).encode()
            )
            self.sockets.append(sock)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self):
        while not self.stopping.wait(1.0):
            for sock in self.sockets:
                try:
                    sock.sendall(b"x" * 20)
                except OSError:  # dropped by the far end: that is its right
                    pass

    def still_open(self):
        """How many connections the server has neither closed nor answered yet."""
        held = 0
        for sock in self.sockets:
            sock.settimeout(0)  # with a timeout, recv would wait that long for something
            try:
                sock.recv(1, socket.MSG_PEEK)  # an answer, or b"" if closed
            except BlockingIOError:
                held += 1  # nothing yet: the upload is still being received
            except OSError:
                pass
            sock.settimeout(10)
        return held

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def read_latencies(url, token, seconds, timeout):
    """Status reads one after another for `seconds`: each one's time (None if it timed out)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            assert session.get(url, timeout=timeout).status_code == 200
            latencies.append(time.monotonic() - started)
        except requests.Timeout:
            latencies.append(None)
        time.sleep(0.05)
    return latencies


def gunicorn_version():
    import gunicorn

    return gunicorn.__version__


def p99(latencies):
    answered = sorted(value if value is not None else float("inf") for value in latencies)
    return answered[max(0, int(len(answered) * 0.99) - 1)]


@pytest.fixture
def behind_nginx(stack):
    if not (shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")):
        pytest.skip("nginx is not installed here (make setup installs it where it may, as root)")
    stack.env.update(
        COMPAT_ALLOW_ANONYMOUS="true",
        THROTTLE_ANON_RATE=f"{ANONYMOUS_RATE}/min",
        THROTTLE_USER_RATE="100000/min",  # the status reads below: latency, not the limit
    )
    service = MakeRun(stack.env, stack.folder / "make-run-nginx.log", workers=1, proxy="nginx")
    stack.processes.append(service)
    return service.start(timeout=180)


def test_status_reads_stay_fast_behind_nginx_while_50_uploads_trickle_in(behind_nginx, stack, photo, figure):
    service, token = behind_nginx, stack.tokens["alice"]
    client = ApiClient(service.url, token)
    job_id = client.submit_until_accepted(photo)[0]
    assert client.wait_all([job_id])[job_id]["status"] == "succeeded"
    status_url = f"/api/v1/jobs/{job_id}/"

    uploads = SlowUploads(service.port, token, SLOW_UPLOADS)
    try:
        time.sleep(2)  # every upload under way
        through_nginx = read_latencies(service.url + status_url, token, seconds=15, timeout=5)
        held = uploads.still_open()
    finally:
        uploads.close()
    time.sleep(1)  # what gunicorn would log of them, had it seen them, once they are dropped
    # nginx passes a request on only once its body is whole: gunicorn saw one POST, the job's.
    posts_seen_by_gunicorn = len(re.findall(r"web\.1 .*\"POST /api/v1/jobs/ ", service.log()))

    # The same 50 straight at gunicorn, for the figures: what a client skipping nginx meets.
    uploads = SlowUploads(service.port + 1, token, SLOW_UPLOADS)
    try:
        time.sleep(2)
        direct = read_latencies(service.web_url + status_url, token, seconds=8, timeout=2)
    finally:
        uploads.close()

    answered = [v for v in direct if v is not None]
    figure(
        f"make run PROXY=nginx, {SLOW_UPLOADS} uploads trickling 20 B/s: {len(through_nginx)} status reads "
        f"through nginx, p99 {p99(through_nginx) * 1000:.0f} ms, median "
        f"{statistics.median(through_nginx) * 1000:.0f} ms, {held} uploads held open, "
        f"{posts_seen_by_gunicorn - 1} of them reached gunicorn; the same uploads straight at gunicorn "
        f"{gunicorn_version()}: {len(direct) - len(answered)} of {len(direct)} reads timed out at 2 s, "
        f"median {statistics.median(answered or [0]) * 1000:.0f} ms"
    )
    assert held == SLOW_UPLOADS, "nginx dropped slow uploads that were still moving"
    assert posts_seen_by_gunicorn == 1, "nginx passed unfinished uploads on to gunicorn"
    assert None not in through_nginx and p99(through_nginx) < 0.2


def anonymous_get(service, source, forwarded_for):
    """GET MAX's metadata (anonymous in compat mode) from a loopback address of our choice,
    with an X-Forwarded-For the client made up."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10, source_address=(source, 0))
    try:
        connection.request("GET", "/model/metadata", headers={"X-Forwarded-For": forwarded_for})
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_web_process_counts_clients_by_the_address_nginx_saw(behind_nginx):
    """Behind nginx (TRUSTED_PROXIES=1) the per-address throttle keys on the address nginx saw
    (every request reaches gunicorn from 127.0.0.1): a client writing a fresh X-Forwarded-For
    on each request is still one client, and two clients are two."""
    first = [anonymous_get(behind_nginx, "127.0.0.2", f"198.51.100.{i}") for i in range(ANONYMOUS_RATE + 2)]
    second = [anonymous_get(behind_nginx, "127.0.0.3", "198.51.100.1") for _ in range(ANONYMOUS_RATE)]
    assert first == [200] * ANONYMOUS_RATE + [429, 429]
    assert second == [200] * ANONYMOUS_RATE
