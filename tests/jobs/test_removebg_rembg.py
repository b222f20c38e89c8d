"""remove.bg's and rembg's protocols, driven as their clients drive them.

Jobs run in this process through the real pipeline and the real light models (the
`inline_worker` fixture stands in for the queue hop); tests/e2e/test_effects_compat.py
runs the same protocols over HTTP with a real worker, with `requests` and curl.
"""

import base64
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image
from rest_framework.authtoken.models import Token

from jobs.api import submission
from jobs.compat.removebg import foreground_in_result
from jobs.compat.sync import read_output
from jobs.models import Job
from tests.conftest import eval_photo, gradient, image_bytes
from tests.jobs.helpers import upload
from workers.pipeline import run_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def inline_worker(engines, sent, monkeypatch):
    """The job runs to its end where the request would wait for a worker."""
    monkeypatch.setattr(
        submission, "wait_until_finished", lambda job_id, seconds: run_job(job_id, "inline@test")
    )


@pytest.fixture
def queued_only(sent, monkeypatch):
    """Nothing runs the job: the request answers 202 at once, and the job shows its options."""
    monkeypatch.setattr(submission, "wait_until_finished", lambda job_id, seconds: None)


@pytest.fixture
def key(alice):
    return Token.objects.get(user=alice.user).key


@pytest.fixture
def astronaut():
    return eval_photo("photos/astronaut.jpg").read_bytes()


@pytest.fixture
def photo_server(astronaut, settings):
    """A local HTTP server with the astronaut at /astronaut.jpg, allowed as an image host."""
    settings.IMAGE_URL_ALLOWED_HOSTS = ["127.0.0.1"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/astronaut.jpg" else 404)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            if self.path == "/astronaut.jpg":
                self.wfile.write(astronaut)

        def log_message(self, *args):
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{http.server_address[1]}"
    http.shutdown()
    http.server_close()


def removebg(client, key=None, image=None, accept=None, **data):
    """remove.bg's Python snippet: image_file as a file, the rest as form fields."""
    fields = dict(data)
    if image is not None:
        fields["image_file"] = upload("astronaut.jpg", image)
    headers = {"HTTP_X_API_KEY": key} if key else {}
    if accept:
        headers["HTTP_ACCEPT"] = accept
    return client.post("/v1.0/removebg", fields, format="multipart", **headers)


def opened(response):
    return Image.open(io.BytesIO(response.content))


def matte_of(job):
    return np.asarray(Image.open(io.BytesIO(read_output(job, "matte"))))


def assert_removebg_error(response, status, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"errors"} and body["errors"], body
    assert all(error["title"] for error in body["errors"])
    if code:
        assert body["errors"][0]["code"] == code, body
    return body["errors"]


# remove.bg


def test_the_removebg_snippet_answers_a_png_with_alpha_at_the_photos_size(
    anonymous, key, astronaut, inline_worker
):
    response = removebg(anonymous, key, astronaut, size="auto")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    result = opened(response)
    assert result.format == "PNG" and result.mode == "RGBA" and result.size == (512, 512)
    alpha = np.asarray(result)[..., 3]
    assert (alpha == 0).mean() > 0.1 and (alpha == 255).mean() > 0.2  # the background went, she stayed
    assert (response["X-Width"], response["X-Height"], response["X-Type"]) == ("512", "512", "person")
    box = [int(response[f"X-Foreground-{side}"]) for side in ("Left", "Top", "Width", "Height")]
    assert box == Job.objects.get().result["foreground_box"]  # not cropped nor scaled: the photo's
    job = Job.objects.get()
    assert job.owner.username == "alice" and job.task == "cutout" and job.model == "deeplabv3_mnv2_pascal"
    assert job.status == "succeeded" and "max_pixels" not in job.options


def test_size_preview_is_the_default_and_caps_the_result_at_a_quarter_megapixel(
    alice, astronaut, inline_worker
):
    response = removebg(alice, image=astronaut)  # Authorization: Token works as well as X-Api-Key
    assert response.status_code == 200, response.content
    assert opened(response).size == (500, 500)  # 512 x 512 is 262,144 pixels
    assert (response["X-Width"], response["X-Height"]) == ("500", "500")
    assert Job.objects.get().options["max_pixels"] == 250_000
    medium = removebg(alice, image=astronaut, size="medium")
    assert opened(medium).size == (512, 512)  # under 1.5 MP: unchanged


def test_format_zip_holds_color_jpg_and_alpha_png(alice, astronaut, inline_worker):
    response = removebg(alice, image=astronaut, size="full", format="zip")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
    color = Image.open(io.BytesIO(archive.read("color.jpg")))
    alpha = Image.open(io.BytesIO(archive.read("alpha.png")))
    assert (color.format, color.mode, color.size) == ("JPEG", "RGB", (512, 512))
    assert (alpha.format, alpha.mode, alpha.size) == ("PNG", "L", (512, 512))
    assert np.array_equal(np.asarray(alpha), matte_of(Job.objects.get()))
    assert Job.objects.get().options["extra_outputs"] == ["color"]


def test_channels_alpha_answers_the_matte(alice, astronaut, inline_worker):
    response = removebg(alice, image=astronaut, size="auto", channels="alpha")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    mask = opened(response)
    assert mask.mode == "L" and mask.size == (512, 512)
    assert np.array_equal(np.asarray(mask), matte_of(Job.objects.get()))
    jpeg = removebg(alice, image=astronaut, size="auto", channels="alpha", format="jpg")
    assert jpeg["Content-Type"] == "image/jpeg" and opened(jpeg).mode == "L"


def test_accept_json_answers_result_b64_and_the_foreground_box(alice, astronaut, inline_worker):
    response = removebg(alice, image=astronaut, size="auto", accept="application/json")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert set(data) == {
        "result_b64",
        "foreground_top",
        "foreground_left",
        "foreground_width",
        "foreground_height",
    }
    result = Image.open(io.BytesIO(base64.b64decode(data["result_b64"])))
    assert result.mode == "RGBA" and result.size == (512, 512)
    for side in ("top", "left", "width", "height"):
        assert data[f"foreground_{side}"] == int(response[f"X-Foreground-{side.title()}"])


def test_image_file_b64_and_a_json_body(alice, astronaut, inline_worker):
    body = {"image_file_b64": base64.b64encode(astronaut).decode(), "size": "full", "crop": True}
    response = alice.post("/v1.0/removebg", body, format="json")
    assert response.status_code == 200, response.content
    job = Job.objects.get()
    x, y, width, height = job.result["foreground_box"]
    assert opened(response).size == (width, height) == tuple(job.result["output_size"])
    assert (response["X-Foreground-Left"], response["X-Foreground-Top"]) == ("0", "0")  # in the crop


def test_a_crop_margin_is_ignored_without_crop_as_removebg_does(alice, astronaut, inline_worker):
    response = removebg(alice, image=astronaut, size="full", crop="false", crop_margin="10%")
    assert response.status_code == 200 and opened(response).size == (512, 512)
    cropped = removebg(alice, image=astronaut, size="full", crop="true", crop_margin="10px")
    assert cropped.status_code == 200
    assert Job.objects.latest("created_at").options["crop_margin"] == {"value": 10, "unit": "px"}


def test_bg_color_answers_a_jpeg_over_the_colour_by_default_and_an_exact_png_on_request(
    alice, astronaut, inline_worker
):
    response = removebg(alice, image=astronaut, size="full", bg_color="81d4fa")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"  # format=auto
    job = Job.objects.get()
    assert job.options["background"] == "#81d4fa" and "composite" in job.outputs
    background = matte_of(job) == 0
    shown = np.asarray(opened(response).convert("RGB"), int)
    assert np.abs(shown[background] - (0x81, 0xD4, 0xFA)).max(axis=1).mean() < 6  # JPEG's noise

    png = removebg(alice, image=astronaut, size="full", bg_color="green", format="png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    pixels = np.asarray(opened(png))
    assert (pixels[..., 3] == 255).all()
    background = matte_of(Job.objects.latest("created_at")) == 0
    assert (pixels[background][:, :3] == (0, 128, 0)).all()  # laid over exactly, not via a JPEG


def test_format_jpg_of_a_transparent_cutout_is_on_white(alice, astronaut, inline_worker):
    response = removebg(alice, image=astronaut, size="full", format="jpg")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert Job.objects.get().options["background"] == "#ffffff"


def test_bg_image_file_is_stored_with_the_job_and_composited(alice, astronaut, inline_worker):
    behind = image_bytes(np.full((60, 80, 3), (200, 30, 40), np.uint8), "JPEG")
    fields = {"image_file": upload("astronaut.jpg", astronaut), "bg_image_file": upload("wall.jpg", behind)}
    response = alice.post("/v1.0/removebg", {**fields, "size": "full"}, format="multipart")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    job = Job.objects.get()
    assert job.options["background"] == "image" and job.options["background_image"] == "background.jpg"
    shown = np.asarray(opened(response).convert("RGB"), int)
    assert np.abs(shown[matte_of(job) == 0] - (200, 30, 40)).max(axis=1).mean() < 8


def test_bg_image_url_goes_to_the_worker_in_the_options(alice, astronaut, queued_only):
    url = "https://images.example.com/wall.jpg"
    response = removebg(alice, image=astronaut, bg_image_url=url)
    assert_removebg_error(response, 202, "not_finished")
    options = Job.objects.get().options
    assert options["background"] == "image" and options["background_url"] == url


def test_a_bg_image_url_is_fetched_and_composited_by_the_worker(alice, inline_worker, photo_server):
    photo = np.full((64, 64, 3), (10, 200, 30), np.uint8)  # a flat photo: all background
    behind = photo_server + "/astronaut.jpg"
    response = removebg(alice, image=image_bytes(photo), size="full", type="person", bg_image_url=behind)
    assert_removebg_error(response, 400, "unknown_foreground")  # nothing to keep, but it ran
    job = Job.objects.get()
    assert job.status == "succeeded" and "composite" in job.outputs
    shown = np.asarray(Image.open(io.BytesIO(read_output(job, "composite"))).convert("RGB"), int)
    assert np.abs(shown - (10, 200, 30)).max(axis=2).mean() > 40  # the astronaut, not the photo


@pytest.mark.parametrize(
    "kind, labels",
    [
        ("person", ["person"]),
        ("animal", ["bird", "cat", "cow", "dog", "horse", "sheep"]),
        ("car", ["bus", "car"]),
        ("transportation", ["aeroplane", "bicycle", "boat", "bus", "car", "motorbike", "train"]),
    ],
)
def test_type_names_the_foregrounds_classes(alice, astronaut, queued_only, kind, labels):
    response = removebg(alice, image=astronaut, type=kind)
    assert_removebg_error(response, 202, "not_finished")
    errors = response.json()["errors"]
    assert errors[0]["job_id"] == str(Job.objects.get().id) and errors[0]["job_url"]
    assert Job.objects.get().options["classes"] == labels


def test_type_product_is_every_class_but_person_and_auto_the_default(alice, astronaut, queued_only):
    removebg(alice, image=astronaut, type="product")
    classes = Job.objects.get().options["classes"]
    assert "person" not in classes and "background" not in classes and len(classes) == 19
    Job.objects.all().delete()
    removebg(alice, image=astronaut, type="auto", type_level="2", semitransparency="true")
    assert "classes" not in Job.objects.get().options


def test_no_foreground_is_removebgs_unknown_foreground(alice, astronaut, inline_worker):
    response = removebg(alice, image=astronaut, type="car")  # no car in the photo
    errors = assert_removebg_error(response, 400, "unknown_foreground")
    assert errors[0]["job_id"] == str(Job.objects.get().id)


@pytest.mark.parametrize(
    "fields, parameter",
    [
        ({}, "image_file"),
        ({"size": "huge"}, "size"),
        ({"type": "spaceship"}, "type"),
        ({"format": "webp"}, "format"),
        ({"channels": "rgb"}, "channels"),
        ({"bg_color": "not-a-colour"}, "bg_color"),
        ({"bg_color": "81d4fa", "format": "png"}, None),  # a good one, for the contrast
        ({"roi": "10% 10% 90% 90%"}, "roi"),
        ({"scale": "50%"}, "scale"),
        ({"position": "20% 30%"}, "position"),
        ({"add_shadow": "true"}, "add_shadow"),
        ({"crop": "true", "crop_margin": "lots"}, "crop_margin"),
        ({"format": "zip", "bg_color": "fff"}, "bg_color"),
        ({"bg_color": "fff", "bg_image_url": "https://example.com/a.jpg"}, "bg_image_url"),
        ({"image_file_b64": "not base64!"}, None),
        ({"image_url": "ftp://example.com/photo.jpg"}, "image_url"),
    ],
)
def test_bad_parameters_answer_removebgs_400(alice, astronaut, queued_only, fields, parameter):
    with_image = "image_file_b64" not in fields and "image_url" not in fields and fields != {}
    response = removebg(alice, image=astronaut if with_image else None, **fields)
    if fields == {"bg_color": "81d4fa", "format": "png"}:
        assert response.status_code == 202  # accepted, and queued
        return
    errors = assert_removebg_error(response, 400)
    if parameter:
        assert errors[0]["source"] == {"parameter": parameter}, errors
        assert errors[0]["title"].startswith(f"{parameter}: ")
    assert Job.objects.count() == 0


def test_any_accept_but_json_gets_the_image_and_a_body_that_is_no_object_is_a_400(
    alice, astronaut, inline_worker
):
    browser = removebg(alice, image=astronaut, accept="text/html,application/xhtml+xml;q=0.9")
    assert browser.status_code == 200 and browser["Content-Type"] == "image/png"
    listed = alice.post("/v1.0/removebg", [1, 2], format="json")
    errors = assert_removebg_error(listed, 400, "invalid_request")
    assert "source" not in errors[0] and "dictionary" in errors[0]["title"]


def test_two_images_or_a_broken_one_are_400s(alice, astronaut, sent):
    both = removebg(alice, image=astronaut, image_url="https://example.com/a.jpg")
    assert assert_removebg_error(both, 400)[0]["source"] == {"parameter": "image_url"}
    broken = removebg(alice, image=b"not an image")
    assert_removebg_error(broken, 400, "invalid_image")
    unsupported = removebg(alice, image=image_bytes(gradient(), "ICO"))
    assert_removebg_error(unsupported, 400, "unsupported_format")  # our 415: remove.bg's 400
    assert Job.objects.count() == 0


def test_a_missing_or_wrong_key_is_removebgs_403(anonymous, alice, astronaut, sent, settings):
    missing = removebg(anonymous, image=astronaut)
    errors = assert_removebg_error(missing, 403, "auth_failed")
    assert errors[0]["title"] == "Missing API Key" and "WWW-Authenticate" not in missing
    wrong = removebg(anonymous, "wrong-key", astronaut)
    assert assert_removebg_error(wrong, 403, "auth_failed")[0]["title"] == "API Key invalid"
    settings.COMPAT_ALLOW_ANONYMOUS = True  # a wrong key is still wrong
    assert removebg(anonymous, "wrong-key", astronaut).status_code == 403
    token = anonymous.post("/v1.0/removebg", {}, HTTP_AUTHORIZATION="Token wrong")
    assert assert_removebg_error(token, 403)[0]["title"] == "API Key invalid"
    assert Job.objects.count() == 0


def test_anonymous_clients_run_as_one_user_when_allowed(anonymous, astronaut, inline_worker, settings):
    settings.COMPAT_ALLOW_ANONYMOUS = True
    response = removebg(anonymous, image=astronaut, size="auto")
    assert response.status_code == 200, response.content
    assert Job.objects.get().owner.username == "compat-anonymous"


def test_too_many_queued_jobs_is_a_429_with_retry_after(alice, astronaut, queued_only, settings):
    settings.MAX_QUEUED_JOBS_PER_USER = 1
    assert removebg(alice, image=astronaut).status_code == 202
    response = removebg(alice, image=astronaut)
    assert_removebg_error(response, 429, "too_many_queued_jobs")
    assert response["Retry-After"] == "30"


def test_image_url_is_fetched_by_the_worker(alice, inline_worker, photo_server):
    response = removebg(alice, image_url=photo_server + "/astronaut.jpg", size="auto")
    assert response.status_code == 200, response.content
    assert opened(response).size == (512, 512)
    job = Job.objects.get()
    assert job.input_url == photo_server + "/astronaut.jpg" and job.input_width == 512


def test_an_image_url_that_gives_no_image_is_removebgs_400(alice, inline_worker, photo_server):
    response = removebg(alice, image_url=photo_server + "/missing.jpg")
    errors = assert_removebg_error(response, 400, "image_url_unreachable")
    assert "404" in errors[0]["title"] and errors[0]["job_id"]


def test_the_foreground_box_follows_the_crop_and_the_size_cap():
    summary = {
        "image_size": [1000, 800],
        "foreground_box": [300, 200, 400, 300],
        "crop": [250, 150, 500, 400],
        "output_size": [250, 200],
    }
    assert foreground_in_result(summary) == {"top": 25, "left": 25, "width": 200, "height": 150}
    assert foreground_in_result({**summary, "foreground_box": None}) is None


# rembg


def rembg(client, data, query="", **fields):
    files = {"file": upload("astronaut.jpg", data)} if data is not None else {}
    return client.post(f"/api/remove{query}", {**files, **fields}, format="multipart")


def assert_rembg_validation(response, *locations):
    assert response.status_code == 422, response.content
    detail = response.json()["detail"]
    assert isinstance(detail, list) and all({"type", "loc", "msg"} <= set(item) for item in detail)
    assert [tuple(item["loc"]) for item in detail] == list(locations), detail
    return detail


def test_rembg_answers_an_rgba_png_of_the_photos_size(alice, astronaut, inline_worker):
    response = rembg(alice, astronaut)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    result = opened(response)
    assert result.mode == "RGBA" and result.size == (512, 512)
    assert (np.asarray(result)[..., 3] == 0).mean() > 0.1
    job = Job.objects.get()
    assert (
        job.task == "cutout"
        and job.model == "deeplabv3_mnv2_pascal"
        and job.options == {"background": "transparent"}
    )


def test_rembg_only_mask_is_a_single_channel_png(alice, astronaut, inline_worker):
    response = rembg(alice, astronaut, om="true")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    mask = opened(response)
    assert mask.mode == "L" and mask.size == (512, 512)
    assert np.array_equal(np.asarray(mask), matte_of(Job.objects.get()))


def test_rembg_bgc_lays_the_cutout_over_the_colour(alice, astronaut, inline_worker):
    response = rembg(alice, astronaut, query="?bgc=255,0,0,255", a="true", af="200", ab="20", ae="5", ppm="1")
    assert response.status_code == 200, response.content
    pixels = np.asarray(opened(response))
    assert pixels.shape == (512, 512, 4) and (pixels[..., 3] == 255).all()
    assert (pixels[matte_of(Job.objects.get()) == 0] == (255, 0, 0, 255)).all()
    half = rembg(alice, astronaut, query="?bgc=0,0,255,128")
    background = np.asarray(opened(half))[matte_of(Job.objects.latest("created_at")) == 0]
    assert (background == (0, 0, 255, 128)).all()  # rembg's alpha_composite keeps its alpha


def test_rembg_model_names_map_to_ours(alice, astronaut, queued_only):
    assert rembg(alice, astronaut, model="isnet-general-use").status_code == 202
    assert "classes" not in Job.objects.latest("created_at").options
    assert rembg(alice, astronaut, model="u2net_human_seg").status_code == 202
    assert Job.objects.latest("created_at").options["classes"] == ["person"]
    assert rembg(alice, astronaut, model="deeplabv3_mnv2_dm05_pascal").status_code == 202
    assert Job.objects.latest("created_at").model == "deeplabv3_mnv2_dm05_pascal"
    selfie = rembg(alice, astronaut, model="selfie_segmentation_mediapipe")
    assert (
        selfie.status_code == 202
        and Job.objects.latest("created_at").model == "selfie_segmentation_mediapipe"
    )
    body = selfie.json()
    assert body["code"] == "not_finished" and body["job_id"] and "detail" in body


@pytest.mark.parametrize(
    "fields, query, locations",
    [
        ({"af": "300"}, "", [("body", "af")]),
        ({"ab": "-1"}, "", [("body", "ab")]),
        ({"ae": "-1"}, "", [("body", "ae")]),
        ({"a": "maybe"}, "", [("body", "a")]),
        ({"model": "nope"}, "", [("body", "model")]),
        ({}, "?bgc=1,2", [("query", "bgc")]),
        ({}, "?bgc=0,0,300,255", [("query", "bgc")]),
    ],
)
def test_rembg_bad_parameters_are_fastapis_422(alice, astronaut, sent, fields, query, locations):
    assert_rembg_validation(rembg(alice, astronaut, query=query, **fields), *locations)
    assert Job.objects.count() == 0


def test_rembg_missing_file_or_url_and_a_broken_image(alice, sent):
    detail = assert_rembg_validation(rembg(alice, None), ("body", "file"))
    assert detail[0]["type"] == "missing"
    assert_rembg_validation(alice.get("/api/remove"), ("query", "url"))
    assert_rembg_validation(alice.get("/api/remove?url=ftp://example.com/a.png"), ("query", "url"))
    broken = rembg(alice, b"not an image")
    assert broken.status_code == 400 and broken.json() == {
        "detail": broken.json()["detail"],
        "code": "invalid_image",
    }
    assert Job.objects.count() == 0


def test_rembg_get_url_is_fetched_by_the_worker(alice, inline_worker, photo_server):
    response = alice.get(f"/api/remove?url={photo_server}/astronaut.jpg&om=true")
    assert response.status_code == 200, response.content
    assert opened(response).mode == "L" and opened(response).size == (512, 512)
    missing = alice.get(f"/api/remove?url={photo_server}/missing.jpg")
    assert missing.status_code == 400 and missing.json()["code"] == "image_url_unreachable"


def test_rembg_without_a_token_is_refused_unless_anonymous_clients_are_allowed(
    anonymous, astronaut, inline_worker, settings
):
    refused = rembg(anonymous, astronaut)
    assert refused.status_code == 401 and set(refused.json()) == {"detail", "code"}
    settings.COMPAT_ALLOW_ANONYMOUS = True
    response = rembg(anonymous, astronaut)
    assert response.status_code == 200, response.content
    assert Job.objects.get().owner.username == "compat-anonymous"
    wrong = anonymous.post("/api/remove", {}, format="multipart", HTTP_AUTHORIZATION="Token wrong")
    assert wrong.status_code == 401  # a wrong token is still wrong
