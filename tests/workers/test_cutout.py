"""Cutout jobs through the API and the pipeline in process, with the real models: options
checked before a job exists, then the matte and the cutout or composite the job writes."""

import io

import numpy as np
import pytest
from PIL import Image

from jobs.models import Job
from tests.conftest import eval_photo, gradient, image_bytes
from tests.jobs.helpers import assert_error, submit, upload
from tests.workers.helpers import succeeded
from tests.workers.test_fetching import ImageServer
from tests.workers.test_pipeline import open_output, phone_photo
from workers.pipeline import run_job

pytestmark = pytest.mark.django_db

ASTRONAUT = "photos/astronaut.jpg"


def cutout(client, photo=ASTRONAUT, **fields):
    return succeeded(client, "cutout", eval_photo(photo).read_bytes(), "a.jpg", **fields)


def test_a_transparent_cutout_of_the_astronaut_keeps_her_and_clears_the_rest(alice, sent, engines):
    job = cutout(alice, foreground="person")
    assert job.model == "deeplabv3_mnv2_pascal"  # the default, chosen by VOC person IoU
    assert job.outputs == {"matte": "matte.png", "cutout": "cutout.png"}
    matte, rgba = open_output(job, "matte.png"), open_output(job, "cutout.png")
    assert matte.mode == "L" and rgba.mode == "RGBA" and matte.size == rgba.size == (512, 512)
    alpha = np.asarray(rgba)[..., 3]
    assert (alpha == np.asarray(matte)).all()
    assert 0.35 < (alpha > 127).mean() < 0.5  # a person covers roughly 40% of the frame
    assert (np.asarray(rgba)[alpha == 0][:, :3] == 0).all()  # no trace of the removed background
    summary = job.result
    assert summary["classes"] == ["person"] and summary["background"] == "transparent"
    assert summary["foreground_fraction"] == pytest.approx((alpha > 127).mean(), abs=0.01)
    x, y, w, h = summary["foreground_box"]
    assert 0 <= x < 100 and w > 300 and h > 400


def test_a_colour_background_makes_a_jpeg_composite(alice, sent, engines):
    job = cutout(alice, foreground="person", background="#0000ff")
    assert job.outputs == {"matte": "matte.png", "composite": "composite.jpg"}
    composite = np.asarray(open_output(job, "composite.jpg").convert("RGB")).astype(int)
    alpha = np.asarray(open_output(job, "matte.png"))
    off = np.abs(composite[alpha == 0] - [0, 0, 255]).max(axis=1)
    assert np.percentile(off, 99) < 40  # blue where she is not, but for JPEG's ringing at her edge


def test_a_blurred_background_keeps_the_subject_sharp(alice, sent, engines):
    job = cutout(alice, foreground="person", background="blur", blur_radius="20")
    photo = np.asarray(Image.open(eval_photo(ASTRONAUT)).convert("RGB")).astype(int)
    shown = np.asarray(open_output(job, "composite.jpg").convert("RGB")).astype(int)
    alpha = np.asarray(open_output(job, "matte.png"))
    inside, outside = alpha == 255, alpha == 0
    assert np.abs(shown[inside] - photo[inside]).mean() < 6  # the person as she was
    assert np.abs(shown[outside] - photo[outside]).mean() > 10  # the rest blurred


def test_a_background_image_is_scaled_to_cover_the_photo(alice, sent, engines):
    red = image_bytes(np.full((50, 300, 3), [255, 0, 0], np.uint8))
    job = cutout(alice, foreground="person", background_image=upload("bg.png", red))
    assert job.options["background"] == "image" and job.options["background_image"] == "background.png"
    shown = np.asarray(open_output(job, "composite.jpg").convert("RGB")).astype(int)
    alpha = np.asarray(open_output(job, "matte.png"))
    assert np.percentile(np.abs(shown[alpha == 0] - [255, 0, 0]).max(axis=1), 99) < 40


def test_crop_cuts_every_output_to_the_foreground_and_its_margin(alice, sent, engines):
    job = cutout(
        alice,
        photo="photos/chelsea.jpg",
        model="yolov8n_seg_coco",
        foreground="cat",
        crop="true",
        crop_margin="10px",
    )
    x, y, w, h = job.result["crop"]
    fx, fy, fw, fh = job.result["foreground_box"]
    assert (x, y) == (max(0, fx - 10), max(0, fy - 10)) and w <= fw + 20
    assert open_output(job, "cutout.png").size == open_output(job, "matte.png").size == (w, h)
    assert job.result["output_size"] == [w, h] and job.result["classes"] == ["cat"]


def test_the_selfie_matte_drives_a_cutout_too(alice, sent, engines):
    job = cutout(alice, model="selfie_segmentation_mediapipe")
    alpha = np.asarray(open_output(job, "matte.png"))
    assert ((alpha > 0) & (alpha < 255)).mean() > 0.005  # soft where the photo is soft
    assert job.result["classes"] == ["person"]


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"task": "semantic", "background": "blur"}, "background"),
        ({"task": "semantic", "crop": "true"}, "crop"),
        ({"background": "no-such-colour"}, "background"),
        ({"background": "image"}, "background"),
        ({"blur_radius": "10"}, "blur_radius"),
        ({"background": "blur", "blur_radius": "1000"}, "blur_radius"),
        ({"crop_margin": "10%"}, "crop_margin"),
        ({"crop": "true", "crop_margin": "200%"}, "crop_margin"),
        ({"crop": "true", "crop_margin": "ten"}, "crop_margin"),
        ({"foreground": "unicorn"}, "foreground"),
        ({"foreground": "background"}, "foreground"),
        ({"model": "selfie_segmentation_mediapipe", "foreground": "person"}, "foreground"),
        ({"classes": "person"}, "classes"),
    ],
)
def test_bad_cutout_options_are_a_400_naming_the_field(alice, sent, fields, field):
    task = fields.pop("task", "cutout")
    error = assert_error(submit(alice, task, **fields), 400)
    assert field in error["fields"], error
    assert Job.objects.count() == 0 and sent.calls == []


def test_a_corrupt_background_image_is_refused_like_a_corrupt_photo(alice, sent):
    response = submit(alice, "cutout", background_image=upload("bg.png", b"not an image"))
    assert_error(response, 400, "invalid_image")
    assert Job.objects.count() == 0


@pytest.fixture
def photo_server():
    """The astronaut at /photo.jpg on 127.0.0.1; `.url` is its address."""
    data = eval_photo(ASTRONAUT).read_bytes()
    server = ImageServer(
        {"/photo.jpg": (200, {"Content-Type": "image/jpeg", "Content-Length": str(len(data))}, data)}
    )
    server.url += "/photo.jpg"
    yield server
    server.close()


def test_an_image_url_is_fetched_by_the_worker_and_kept_as_the_input(
    alice, sent, engines, settings, photo_server
):
    settings.IMAGE_URL_ALLOWED_HOSTS = ["127.0.0.1"]
    response = alice.post(
        "/api/v1/jobs/", {"task": "cutout", "image_url": photo_server.url}, format="multipart"
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["input"]["url"] is None and body["input"]["source_url"] == photo_server.url
    assert body["input"]["width"] is None  # not fetched yet: the web thread never connects

    run_job(body["id"], "w@test")
    job = Job.objects.get(pk=body["id"])
    assert job.status == "succeeded", job.error_message
    assert (job.input_width, job.input_height, job.input_filename) == (512, 512, "input.jpg")
    assert open_output(job, "cutout.png").size == (512, 512)
    assert alice.get(f"/api/v1/jobs/{job.pk}/").json()["input"]["url"]


def test_an_image_url_on_a_private_address_fails_the_job_clearly(alice, sent, engines, photo_server):
    # A host name, so that it passes the submit check (an address as the host is refused
    # there) and the worker's lookup finds it on loopback.
    url = photo_server.url.replace("127.0.0.1", "localhost")
    response = alice.post("/api/v1/jobs/", {"task": "semantic", "image_url": url}, format="multipart")
    assert response.status_code == 202, response.content
    run_job(response.json()["id"], "w@test")
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == "failed" and job.error_code == "image_url_refused"
    assert "loopback" in job.error_message


@pytest.mark.parametrize(
    "fields",
    [
        {"task": "semantic"},  # neither
        {"task": "semantic", "image_url": "ftp://example.com/a.jpg"},
        {"task": "semantic", "image_url": "http://user:pw@example.com/a.jpg"},
    ],
)
def test_a_missing_or_malformed_image_url_is_a_400(alice, sent, fields):
    response = alice.post("/api/v1/jobs/", fields, format="multipart")
    assert_error(response, 400)
    assert Job.objects.count() == 0


def test_an_image_and_an_image_url_together_are_a_400(alice, sent):
    data = {
        "task": "semantic",
        "image": upload("a.png", image_bytes(gradient())),
        "image_url": "http://example.com/a.jpg",
    }
    assert_error(alice.post("/api/v1/jobs/", data, format="multipart"), 400)


def test_the_cutout_png_is_a_real_rgba_png(alice, sent, engines):
    job = cutout(alice)
    with open_output(job, "cutout.png") as image:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        assert image.format == "PNG" and image.getbands() == ("R", "G", "B", "A")


def test_an_instance_models_score_threshold_reaches_the_cutout(alice, sent, engines):
    kept = cutout(alice, photo="photos/chelsea.jpg", model="yolov8n_seg_coco", score_threshold="0.5")
    dropped = cutout(alice, photo="photos/chelsea.jpg", model="yolov8n_seg_coco", score_threshold="0.95")
    assert kept.result["classes"] == ["cat"] and kept.result["foreground_fraction"] > 0.5  # the cat, at 0.76
    assert dropped.result["classes"] == [] and dropped.result["foreground_fraction"] == 0
    assert dropped.result["foreground_box"] is None


def test_a_12_mp_cutout_is_made_at_full_size_from_a_smaller_network_copy(alice, sent, engines, monkeypatch):
    from workers import pipeline

    real, seen = pipeline.get_model("deeplabv3_mnv2_pascal"), []

    class Recording:  # the real engine, noting the size of each photo it is given
        spec = real.spec

        def infer(self, rgb, options, size=None):
            seen.append(rgb.shape[:2])
            return real.infer(rgb, options, size)

    monkeypatch.setattr(pipeline, "get_model", lambda name: Recording())
    large = succeeded(alice, "cutout", phone_photo(ASTRONAUT), "phone.jpg", foreground="person")
    assert seen == [(756, 1008)]  # the network's copy, not the 12 MP photo
    monkeypatch.undo()
    small = cutout(alice, foreground="person")
    matte = open_output(large, "matte.png")
    assert matte.size == (4032, 3024) and open_output(large, "cutout.png").size == (4032, 3024)
    assert large.result["image_size"] == [4032, 3024]
    # The same astronaut: her share of the photo as the 512 px cutout finds it.
    assert abs(large.result["foreground_fraction"] - small.result["foreground_fraction"]) < 0.02


def test_a_12_mp_jpegs_network_copy_is_decoded_reduced_while_the_photo_decodes_whole(
    alice, sent, engines, monkeypatch
):
    import threading

    from core.imageio import decode_image
    from workers import pipeline

    decodes = []  # (reduction factor for the 12 MP photo, thread) of each decode

    def recording(fileobj, max_pixels, reduction=None):
        decodes.append((reduction(4032, 3024) if reduction else 1, threading.current_thread()))
        return decode_image(fileobj, max_pixels, reduction)

    monkeypatch.setattr(pipeline, "decode_image", recording)
    photo = Image.open(io.BytesIO(phone_photo(ASTRONAUT)))
    as_jpeg = succeeded(alice, "cutout", phone_photo(ASTRONAUT), "phone.jpg", foreground="person")
    assert [factor for factor, _ in decodes] == [4, 1]  # libjpeg's 1/4 for the network, then whole
    assert decodes[0][1] is threading.main_thread() and decodes[1][1] is not threading.main_thread()
    decodes.clear()
    as_png = succeeded(alice, "cutout", image_bytes(photo, "PNG"), "phone.png", foreground="person")
    assert [factor for factor, _ in decodes] == [1]  # decoded once, box-reduced by network_copy
    assert open_output(as_jpeg, "cutout.png").size == (4032, 3024)
    # The two copies the network saw differ by libjpeg's scaling: the same astronaut.
    assert abs(as_jpeg.result["foreground_fraction"] - as_png.result["foreground_fraction"]) < 0.01


def test_a_whole_decode_that_fails_on_its_thread_fails_the_job_with_its_own_error(
    alice, sent, engines, monkeypatch
):
    from core.imageio import ImageError, decode_image
    from workers import pipeline

    def whole_fails(fileobj, max_pixels, reduction=None):
        if reduction is None:
            raise ImageError("the image could not be decoded: broken data stream")
        return decode_image(fileobj, max_pixels, reduction)

    monkeypatch.setattr(pipeline, "decode_image", whole_fails)
    response = submit(alice, "cutout", data=phone_photo(ASTRONAUT), name="phone.jpg", foreground="person")
    run_job(response.json()["id"], "w@test")
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.status, job.error_code) == ("failed", "invalid_image"), job.error_message
    assert "broken data stream" in job.error_message
