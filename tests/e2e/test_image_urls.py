"""`image_url` instead of an upload, through the live server and a real worker: the worker
fetches from a local server that IMAGE_URL_ALLOWED_HOSTS lets it reach; a private address
is refused at submit when the URL names it, and at the fetch when a redirect leads there; a
body past the size cap is cut off while it is read."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from tests.conftest import eval_photo
from tests.e2e.test_flow import fetch_image

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HUGE = 100 * 1024 * 1024
CHUNK = 64 * 1024


class PhotoServer:
    """/chelsea.jpg, /huge (100 MB of bytes, streamed), /to-private (a redirect to 10.0.0.1);
    counts what it managed to send of /huge before the client hung up."""

    def __init__(self, photo):
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/chelsea.jpg":
                    self._answer(200, {"Content-Type": "image/jpeg", "Content-Length": str(len(photo))})
                    self.wfile.write(photo)
                elif self.path == "/to-private":
                    self._answer(302, {"Location": "http://10.0.0.1/cat.jpg", "Content-Length": "0"})
                elif self.path == "/huge":
                    self._answer(200, {"Content-Type": "image/jpeg"})  # no length: read until cut
                    try:
                        while server.sent < HUGE:
                            self.wfile.write(b"\xff" * CHUNK)
                            server.sent += CHUNK
                    except OSError:  # the worker stopped reading at its cap and closed
                        pass

            def _answer(self, status, headers):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(scope="module")
def photos():
    server = PhotoServer(eval_photo("photos/chelsea.jpg").read_bytes())
    yield server
    server.close()


@pytest.fixture(scope="module")
def worker(start_worker):
    # 127.0.0.1 is where the test server listens: allowed, as a developer would.
    worker = start_worker("urls", env={"IMAGE_URL_ALLOWED_HOSTS": "127.0.0.1", "IMAGE_URL_TIMEOUT": "20"})
    yield worker
    worker.stop()


@pytest.fixture
def allowed(settings):
    settings.IMAGE_URL_ALLOWED_HOSTS = ["127.0.0.1"]  # the web's submit check, in-process


def submit_url(client, url, **fields):
    return client.session.post(
        f"{client.base_url}/api/v1/jobs/", data={"image_url": url, "task": "semantic", **fields}, timeout=30
    )


def test_an_image_url_on_an_allowed_host_is_fetched_and_segmented(worker, client, photos, allowed, figure):
    response = submit_url(client, photos.url + "/chelsea.jpg")
    assert response.status_code == 202, response.text
    job = client.wait(response.headers["Location"])
    assert job["status"] == "succeeded", job["error"]
    mask = np.asarray(fetch_image(job["result"]["files"]["mask"]))
    assert mask.shape == (300, 451) and (mask == 8).mean() > 0.5  # VOC's cat
    figure(f"image_url on a local server: succeeded, mask 451x300, cat on {(mask == 8).mean():.0%}")


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/cat.jpg"])
def test_an_image_url_naming_a_private_address_is_refused_at_submit(client, url):
    response = submit_url(client, url)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_image_url"


def test_a_redirect_to_a_private_address_fails_the_job_with_a_clear_code(worker, client, photos, allowed):
    job = client.wait(submit_url(client, photos.url + "/to-private").headers["Location"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "image_url_refused" and "private" in job["error"]["message"]


def test_a_url_serving_100_mb_is_cut_off_at_the_size_cap(worker, client, photos, allowed, figure, settings):
    job = client.wait(submit_url(client, photos.url + "/huge").headers["Location"], timeout=120)
    assert job["status"] == "failed" and job["error"]["code"] == "image_url_too_large"
    cap = settings.IMAGE_URL_MAX_BYTES
    # What the server got out before the worker hung up: the cap, and the sockets' buffers.
    assert photos.sent < cap + 16 * 1024 * 1024
    figure(
        f"image_url serving 100 MB: failed image_url_too_large; {photos.sent / 1e6:.0f} MB sent of 105 "
        f"before the worker hung up at its {cap / 1e6:.0f} MB cap"
    )
