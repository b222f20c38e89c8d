"""remove.bg's and rembg's protocols over HTTP, against the live server and a real worker,
exactly as their clients send them: remove.bg's own Python snippet, and curl for rembg."""

import io
import shutil
import subprocess

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import eval_photo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def worker(start_worker):
    worker = start_worker("effects-compat")
    yield worker
    worker.stop()


@pytest.fixture
def token(client):
    return client.session.headers["Authorization"].split()[1]


def test_the_removebg_snippet_gets_an_rgba_png_of_the_photos_size(worker, live_server, client, token):
    # remove.bg's documentation's snippet, with only the base URL changed.
    photo = eval_photo("photos/astronaut.jpg")
    response = requests.post(
        live_server.url + "/v1.0/removebg",
        files={"image_file": open(photo, "rb")},
        data={"size": "auto"},
        headers={"X-Api-Key": token},
        timeout=90,
    )
    assert response.status_code == requests.codes.ok, response.text
    result = Image.open(io.BytesIO(response.content))
    assert result.format == "PNG" and result.mode == "RGBA" and result.size == Image.open(photo).size
    alpha = np.asarray(result)[..., 3]
    assert (alpha == 0).mean() > 0.1 and (alpha == 255).mean() > 0.2
    assert (response.headers["X-Width"], response.headers["X-Height"]) == ("512", "512")
    assert response.headers["X-Type"] == "person"
    job = client.get("/api/v1/jobs/?page_size=1").json()["results"][0]  # an ordinary job
    assert job["task"] == "cutout" and job["status"] == "succeeded"
    print(
        f"\nremove.bg snippet: {len(response.content)} bytes of PNG in {response.elapsed.total_seconds():.2f} s"
    )


def test_a_removebg_error_has_removebgs_shape(worker, live_server):
    response = requests.post(live_server.url + "/v1.0/removebg", data={"size": "auto"}, timeout=30)
    assert response.status_code == 403
    assert response.json()["errors"][0]["title"] == "Missing API Key"


def curl(*arguments):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    done = subprocess.run(["curl", "-sS", "--max-time", "90", *arguments], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return done


@pytest.mark.parametrize("fields, mode", [((), "RGBA"), (("-F", "om=true"), "L")], ids=["cutout", "mask"])
def test_curl_to_rembg_gets_the_cutout_or_the_mask(worker, live_server, settings, tmp_path, fields, mode):
    settings.COMPAT_ALLOW_ANONYMOUS = True  # rembg's clients send no token
    photo = eval_photo("photos/astronaut.jpg")
    out = tmp_path / "out.png"
    done = curl(
        "-F", f"file=@{photo}", *fields, f"{live_server.url}/api/remove", "-o", str(out), "-w", "%{http_code}"
    )
    assert done.stdout == b"200", out.read_bytes()[:500]
    result = Image.open(out)
    assert result.format == "PNG" and result.mode == mode and result.size == (512, 512)
