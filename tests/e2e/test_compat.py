"""MAX's and the iOS app's protocols over HTTP, against the live server and a real worker,
exactly as those clients send them."""

import base64
import io

import pytest
import requests
from PIL import Image

from tests.conftest import eval_photo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def worker(start_worker):
    worker = start_worker("compat")
    yield worker
    worker.stop()


@pytest.mark.parametrize("fmt", ["jpg", "png"])
def test_max_client_gets_people_and_monitors_where_they_are(worker, client, fmt):
    # As MAX's own test does: multipart, field `image`, (name, file, image/<fmt>).
    path = eval_photo(f"max/stc.{fmt}")
    with open(path, "rb") as file:
        response = client.session.post(
            f"{client.base_url}/model/predict", files={"image": (path.name, file, f"image/{fmt}")}, timeout=90
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["image_size"] == [513, 256]
    assert len(body["seg_map"]) == body["image_size"][1]
    assert body["seg_map"][0][0] == 0  # no object in the top left corner
    assert body["seg_map"][130][170] == 15  # a person
    assert body["seg_map"][200][500] == 20  # a monitor ("tvmonitor"), bottom right
    print(
        f"\nMAX predict stc.{fmt}: {len(response.content)} bytes of JSON in {response.elapsed.total_seconds():.2f} s"
    )


def ios_request(client, route, photo):
    encoded = base64.b64encode(photo.read_bytes()).decode()
    lines = "\r\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))  # .lineLength64Characters
    return client.session.post(f"{client.base_url}/{route}", json={"image": lines}, timeout=90)


def latest_job(client):
    return client.get("/api/v1/jobs/?page_size=1").json()["results"][0]


def test_ios_semantic_paints_the_people_and_monitors_and_answers_jpeg(worker, client):
    photo = eval_photo("max/stc.jpg")
    response = ios_request(client, "semantic", photo)
    assert response.status_code == 200, response.text
    overlay = Image.open(io.BytesIO(base64.b64decode(response.json()["output_image"])))
    assert overlay.format == "JPEG" and overlay.size == (1200, 600)
    job = latest_job(client)  # an ordinary job, visible in the API
    assert job["status"] == "succeeded" and job["task"] == "semantic"
    found = {c["label"]: c["fraction"] for c in job["result"]["summary"]["classes"]}
    assert found["person"] > 0.15 and found["tvmonitor"] > 0.01
    mask = Image.open(io.BytesIO(requests.get(job["result"]["files"]["mask"], timeout=30).content))
    assert mask.getpixel((400, 300)) == 15 and mask.getpixel((1170, 470)) == 20


def test_ios_instance_outlines_the_people(worker, client):
    response = ios_request(client, "instance", eval_photo("max/stc.jpg"))
    assert response.status_code == 200, response.text
    overlay = Image.open(io.BytesIO(base64.b64decode(response.json()["output_image"])))
    assert overlay.format == "JPEG" and overlay.size == (1200, 600)
    people = [i for i in latest_job(client)["result"]["summary"]["instances"] if i["label"] == "person"]
    assert len(people) >= 5
    print(f"\niOS instance stc.jpg: {len(people)} people, {len(response.content)} bytes of JSON")
