"""The MAX and PixelLib/iOS protocols, driven as their clients drive them.

Jobs run in this process through the real pipeline and the real light models (the
`inline_worker` fixture stands in for the queue hop); tests/e2e/test_compat.py runs the
same protocols over HTTP with a real worker.
"""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from jobs.api import submission
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


def max_predict(client, data, name="stc.jpg", **fields):
    return client.post("/model/predict", {"image": upload(name, data), **fields}, format="multipart")


def ios_body(data):
    """Base64 as iOS's base64EncodedString(options: .lineLength64Characters) writes it."""
    text = base64.b64encode(data).decode()
    return {"image": "\r\n".join(text[i : i + 64] for i in range(0, len(text), 64))}


@pytest.mark.parametrize("name", ["stc.jpg", "stc.png"])
def test_max_predict_answers_maxs_seg_map_for_its_own_test_photo(alice, inline_worker, name):
    response = max_predict(alice, eval_photo(f"max/{name}").read_bytes(), name)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"status", "image_size", "seg_map"} and body["status"] == "ok"
    assert body["image_size"] == [513, 256]  # MAX truncates 256.5
    assert len(body["seg_map"]) == 256 and {len(row) for row in body["seg_map"]} == {513}
    seg_map = body["seg_map"]
    assert (seg_map[0][0], seg_map[130][170], seg_map[200][500]) == (0, 15, 20)  # MAX's test pixels
    job = Job.objects.get()
    assert job.owner == alice.user and job.task == "semantic" and job.model == "deeplabv3_mnv2_pascal"


def test_max_image_size_sets_the_seg_map_size(alice, inline_worker, settings):
    settings.MAX_IMAGE_SIZE = 64
    body = max_predict(alice, image_bytes(gradient(100, 40)), "g.png").json()
    assert body["image_size"] == [64, 25] and len(body["seg_map"]) == 25


def test_max_metadata_and_labels(alice):
    metadata = alice.get("/model/metadata").json()
    assert set(metadata) == {"id", "name", "description", "type", "license", "source"}
    assert metadata["id"] == "max-image-segmenter" and "max-image-segmenter" in metadata["source"]
    labels = alice.get("/model/labels").json()
    assert len(labels) == 21 and labels[3] == {"id": 3, "name": "bird"} and labels[20]["name"] == "tvmonitor"


def test_max_errors_have_maxs_shape(alice, sent):
    missing = alice.post("/model/predict", {}, format="multipart")
    assert missing.status_code == 400
    assert (
        missing.json()["message"] == "Input payload validation failed" and "image" in missing.json()["errors"]
    )
    broken = max_predict(alice, b"not an image", "x.jpg")
    assert broken.status_code == 400
    assert broken.json() == {"status": "error", "message": broken.json()["message"], "code": "invalid_image"}
    assert (
        max_predict(alice, image_bytes(gradient()), model="yolov8n_seg_coco").json()["code"]
        == "model_task_mismatch"
    )
    assert max_predict(alice, image_bytes(gradient()), model="nope").json()["code"] == "unknown_model"
    full = max_predict(alice, image_bytes(gradient()), model="full")  # no live worker serves it
    assert full.status_code == 503 and full.json()["code"] == "model_unavailable"
    assert full["Retry-After"] == "30"
    assert Job.objects.count() == 0 and sent.calls == []


def test_max_refuses_a_request_without_a_token(anonymous, sent):
    response = anonymous.post("/model/predict", {"image": upload()}, format="multipart")
    assert response.status_code == 401 and response.json()["status"] == "error"
    assert anonymous.get("/model/labels").status_code == 401


def test_anonymous_clients_run_as_one_user_when_allowed(anonymous, inline_worker, settings):
    settings.COMPAT_ALLOW_ANONYMOUS = True
    response = max_predict(anonymous, image_bytes(gradient()), "g.png")
    assert response.status_code == 200
    assert Job.objects.get().owner.username == "compat-anonymous"
    bad_token = anonymous.get("/model/labels", HTTP_AUTHORIZATION="Token wrong")
    assert bad_token.status_code == 401  # a wrong token is still wrong


def test_a_job_that_does_not_finish_in_time_answers_202_with_its_id(alice, sent, settings):
    settings.COMPAT_TIMEOUT = 1
    response = max_predict(alice, image_bytes(gradient()), "g.png")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "error" and body["code"] == "not_finished"
    job = Job.objects.get()
    assert body["job_id"] == str(job.id) and body["job_url"].endswith(f"/api/v1/jobs/{job.id}/")
    ios = alice.post("/semantic", ios_body(image_bytes(gradient())), format="json")
    assert ios.status_code == 202 and ios.json()["error"]["code"] == "not_finished"
    assert ios.json()["error"]["job_id"]


@pytest.mark.parametrize("fmt, name", [("JPEG", "chelsea.jpg"), ("PNG", "chelsea.png")])
def test_ios_semantic_answers_the_overlay_in_the_inputs_format(alice, inline_worker, fmt, name):
    photo = Image.open(eval_photo("photos/chelsea.jpg"))
    data = image_bytes(photo, fmt)
    response = alice.post("/semantic", ios_body(data), format="json")
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"output_image"}
    overlay = Image.open(io.BytesIO(base64.b64decode(response.json()["output_image"])))
    assert overlay.format == fmt and overlay.size == photo.size
    # The cat is painted: the overlay differs from the photo over most of the frame.
    changed = (
        np.abs(np.asarray(overlay.convert("RGB"), int) - np.asarray(photo.convert("RGB"), int)).sum(2) > 30
    )
    assert changed.mean() > 0.4
    cat = next(c for c in Job.objects.get().result["classes"] if c["label"] == "cat")
    assert cat["fraction"] > 0.5


def test_ios_instance_finds_the_cat(alice, inline_worker):
    data = eval_photo("photos/chelsea.jpg").read_bytes()
    response = alice.post("/instance", ios_body(data), format="json")
    assert response.status_code == 200
    assert Image.open(io.BytesIO(base64.b64decode(response.json()["output_image"]))).format == "JPEG"
    assert any(i["label"] == "cat" for i in Job.objects.get().result["instances"])


@pytest.mark.parametrize(
    "wrap",
    [
        lambda text: "data:image/png;base64," + text,
        lambda text: text.rstrip("="),
        lambda text: text.replace("+", "-").replace("/", "_"),
        lambda text: "\n".join(text[i : i + 76] for i in range(0, len(text), 76)),
    ],
    ids=["data-url", "unpadded", "url-safe", "mime-76"],
)
def test_ios_accepts_the_base64_variants_clients_send(alice, inline_worker, wrap):
    text = base64.b64encode(image_bytes(gradient(65, 33))).decode()
    assert alice.post("/semantic", {"image": wrap(text)}, format="json").status_code == 200


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"image": "not base64 at all!"}, 400, "invalid_base64"),
        ({"image": base64.b64encode(b"plain text").decode()}, 400, "invalid_image"),
        ({"image": ""}, 400, "invalid_request"),
        ({"image": "===="}, 400, "invalid_base64"),
        ({"picture": "abc"}, 400, "invalid_request"),
        ({"image": 42}, 400, "invalid_image"),  # "42" decodes to one byte, not an image
        ({"image": "abc", "model": "deeplabv3_mnv2_pascal"}, 400, "model_task_mismatch"),
        ({"image": "abc", "model": "nope"}, 400, "unknown_model"),
        ({"image": "abc", "model": "mask_rcnn_coco"}, 503, "model_unavailable"),
    ],
)
def test_ios_bad_bodies_are_json_4xx(alice, sent, body, status, code):
    response = alice.post("/instance", body, format="json")
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert Job.objects.count() == 0


def test_ios_takes_json_only(alice, sent):
    response = alice.post("/semantic", {"image": "abc"}, format="multipart")
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"


def test_ios_refuses_an_oversized_body_before_reading_it(alice, sent, settings):
    settings.MAX_UPLOAD_BYTES = 2048
    response = alice.post("/semantic", {"image": "A" * 10_000}, format="json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "upload_too_large"


def test_deeply_nested_json_is_a_400_not_a_crash(alice, sent):
    for path in ("/semantic", "/api/v1/jobs/"):
        response = alice.post(path, "[" * 5000, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_request"


def test_a_job_deleted_while_its_request_waits_is_a_409(alice, sent, monkeypatch):
    monkeypatch.setattr(
        submission, "wait_until_finished", lambda job_id, seconds: Job.objects.filter(pk=job_id).delete()
    )
    response = alice.post("/semantic", ios_body(image_bytes(gradient())), format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "job_deleted"
    assert max_predict(alice, image_bytes(gradient()), "g.png").json()["code"] == "job_deleted"


def test_a_deactivated_anonymous_user_shuts_anonymous_access(
    anonymous, inline_worker, settings, django_user_model
):
    settings.COMPAT_ALLOW_ANONYMOUS = True
    assert anonymous.get("/model/labels").status_code == 200
    user = django_user_model.objects.get(username="compat-anonymous")
    assert not user.has_usable_password()
    django_user_model.objects.filter(pk=user.pk).update(is_active=False)
    assert anonymous.get("/model/labels").status_code == 401


def test_an_iphone_portrait_photo_mpo_is_treated_as_jpeg(alice, inline_worker):
    first, depth = Image.fromarray(gradient(80, 60)), Image.fromarray(gradient(40, 30))
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[depth])
    response = alice.post("/semantic", ios_body(buffer.getvalue()), format="json")
    assert response.status_code == 200, response.content
    assert Image.open(io.BytesIO(base64.b64decode(response.json()["output_image"]))).format == "JPEG"


def test_max_keeps_its_shape_for_a_flood_of_form_fields(alice, sent):
    fields = {f"f{i}": "x" for i in range(1500)}
    response = alice.post("/model/predict", {"image": upload(), **fields}, format="multipart")
    assert response.status_code == 400
    assert response.json()["status"] == "error" and response.json()["code"] == "malformed_request"


def test_an_image_at_the_limit_fits_in_ios_base64(alice, inline_worker, settings):
    # Noise does not compress: about 1.5 MB, enough that iOS's line breaks (6% more) would
    # overflow a limit of 4/3 of the bytes plus the 64 KiB of framing.
    photo = image_bytes(np.random.default_rng(1).integers(0, 255, (720, 720, 3), dtype=np.uint8))
    settings.MAX_UPLOAD_BYTES = len(photo) + 10
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = settings.MAX_UPLOAD_BYTES * 3 // 2 + 64 * 1024
    body = json.dumps(ios_body(photo))  # \r\n escaped: 4 more characters every 64
    assert len(body) > len(photo) * 4 // 3 + 64 * 1024
    assert alice.post("/semantic", body, content_type="application/json").status_code == 200
