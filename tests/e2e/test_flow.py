"""The product's core loop over HTTP, Redis and a real worker with the real weights."""

import io
import time

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import eval_photo
from tests.odd_images import cases, turned_by_its_container

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def worker(start_worker):
    worker = start_worker("flow")
    yield worker
    worker.stop()  # no other module's jobs may land on this worker


def fetch_image(url):
    response = requests.get(url, timeout=30)  # signed URL: no token needed
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def test_semantic_astronaut_marks_a_person_on_30_percent_within_10_seconds(worker, client):
    started = time.monotonic()
    response = client.submit(
        eval_photo("photos/astronaut.jpg").read_bytes(), "astronaut.jpg", task="semantic"
    )
    assert response.status_code == 202
    job = client.wait(response.headers["Location"])
    elapsed = time.monotonic() - started
    assert job["status"] == "succeeded", job["error"]
    assert elapsed < 10
    mask = fetch_image(job["result"]["files"]["mask"])
    assert mask.mode == "P" and mask.size == (512, 512)
    assert (np.asarray(mask) == 15).mean() >= 0.30
    assert fetch_image(job["result"]["files"]["overlay"]).size == (512, 512)
    print(
        f"\nsemantic astronaut: {elapsed * 1000:.0f} ms end to end, timings {job['timings']}, "
        f"person {(np.asarray(mask) == 15).mean():.3f}"
    )


def test_instance_chelsea_yields_a_cat_scoring_at_least_half(worker, client):
    response = client.submit(eval_photo("photos/chelsea.jpg").read_bytes(), "chelsea.jpg", task="instance")
    job = client.wait(response.headers["Location"])
    assert job["status"] == "succeeded", job["error"]
    cats = [i for i in job["result"]["summary"]["instances"] if i["label"] == "cat"]
    assert cats and cats[0]["score"] >= 0.5
    instances = fetch_image(job["result"]["files"]["instances"])
    assert instances.size == (451, 300)
    assert (np.asarray(instances) == cats[0]["index"]).sum() > 0
    print(f"\ninstance chelsea: cat {cats[0]['score']:.3f}, timings {job['timings']}")


@pytest.mark.parametrize("fmt, filename", [("HEIF", "IMG_0001.HEIC"), ("AVIF", "IMG_0001.avif")])
def test_an_iphone_photo_taken_on_its_side_is_segmented_as_it_is_shown(worker, client, fmt, filename, figure):
    # chelsea.jpg (451x300) as the sensor read it, with EXIF orientation 6 and the container's
    # turn: it shows 300 wide and 451 high, and so must its mask.
    with Image.open(eval_photo("photos/chelsea.jpg")) as photo:
        shown = photo.convert("RGB").transpose(Image.Transpose.ROTATE_270)
    data = turned_by_its_container(shown, fmt)
    job = client.wait(client.submit(data, filename, task="semantic").headers["Location"])
    assert job["status"] == "succeeded", job["error"]
    mask = np.asarray(fetch_image(job["result"]["files"]["mask"]))
    assert mask.shape == (451, 300)
    cat = (mask == 8).mean()  # VOC's cat
    assert cat >= 0.2
    # The cat where it is shown: the JPEG's own mask, turned the same way, agrees.
    upright = client.wait(
        client.submit(eval_photo("photos/chelsea.jpg").read_bytes(), "chelsea.jpg", task="semantic").headers[
            "Location"
        ]
    )
    turned = np.rot90(np.asarray(fetch_image(upright["result"]["files"]["mask"])), -1)
    agree = (turned == mask).mean()
    assert agree >= 0.9
    figure(
        f"{fmt} chelsea on its side ({len(data) // 1024} KB): mask 300x451, cat on {cat:.0%} of it, "
        f"{agree:.1%} of pixels as the upright JPEG's mask turned"
    )


def test_every_odd_upload_is_a_4xx_or_a_succeeded_job_and_the_worker_survives(worker, client):
    outcomes = {}
    for case in cases():
        response = client.submit(
            case.data, case.filename, task="instance" if "gif" in case.name else "semantic"
        )
        assert response.status_code < 500, (case.name, response.text)
        if case.expect == "ok":
            assert response.status_code == 202, (case.name, response.text)
            job = client.wait(response.headers["Location"])
            assert job["status"] == "succeeded", (case.name, job["error"])
            assert job["result"]["summary"]["image_size"] == list(case.size), case.name
            outcomes[case.name] = "succeeded"
        else:
            assert response.status_code == case.expect, (case.name, response.text)
            assert set(response.json()["error"]) >= {"code", "message"}
            outcomes[case.name] = response.status_code
    assert worker.alive()
    assert "WorkerLostError" not in worker.log() and "Traceback" not in worker.log()
    print(f"\n{len(outcomes)} odd uploads: {outcomes}")
