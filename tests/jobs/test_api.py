import time
import uuid

import pytest
from django.core.files.storage import default_storage
from rest_framework.exceptions import ValidationError

from core.repository import local_specs
from jobs.api.serializers import JobCreateSerializer
from jobs.models import Job
from tests.conftest import light_specs
from tests.jobs.helpers import assert_error, submit
from tests.odd_images import cases

pytestmark = pytest.mark.django_db


def test_submit_answers_202_with_the_job_and_its_location(alice, sent):
    response = submit(alice, "semantic")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["task"] == "semantic"
    assert body["model"] == "deeplabv3_mnv2_pascal"
    assert response["Location"] == body["url"]
    assert body["input"]["width"] == 64 and body["input"]["height"] == 48
    assert body["result"] is None and body["error"] is None


def test_the_broker_carries_only_the_job_id_which_is_the_task_id(alice, sent):
    job_id = submit(alice, "instance").json()["id"]
    assert sent.calls == [
        {"name": "workers.tasks.segment", "args": [job_id], "task_id": job_id, "queue": "light"}
    ]
    job = Job.objects.get(pk=job_id)
    assert job.owner == alice.user and job.model == "yolov8n_seg_coco"
    assert default_storage.exists(job.input.name)


def test_options_are_validated_and_stored(alice, sent):
    body = submit(alice, "instance", classes="cat, dog", score_threshold="0.3").json()
    assert body["options"] == {"classes": ["cat", "dog"], "score_threshold": 0.3}
    body = submit(alice, "semantic", classes=["person", "cat"]).json()
    assert body["options"] == {"classes": ["cat", "person"]}


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"task": "panoptic"}, "invalid_request"),
        ({"task": "semantic", "model": "nope"}, "unknown_model"),
        ({"task": "semantic", "model": "yolov8n_seg_coco"}, "model_task_mismatch"),
        ({"task": "semantic", "classes": "person,unicorn"}, "unknown_class"),
        ({"task": "instance", "score_threshold": "1.5"}, "invalid_request"),
        ({"task": "instance", "score_threshold": "lots"}, "invalid_request"),
        ({"task": "semantic", "score_threshold": "0.5"}, "invalid_request"),
    ],
)
def test_bad_fields_get_400_with_a_code(alice, sent, fields, code):
    task = fields.pop("task")
    error = assert_error(submit(alice, task, **fields), 400, code)
    assert error["fields"]
    assert sent.calls == [] and Job.objects.count() == 0


def test_a_missing_image_or_task_is_400(alice, sent):
    assert_error(
        alice.post("/api/v1/jobs/", {"task": "semantic"}, format="multipart"), 400, "invalid_request"
    )
    assert_error(alice.post("/api/v1/jobs/", {}, format="multipart"), 400, "invalid_request")


def test_a_json_body_is_refused_clearly(alice, sent):
    error = assert_error(alice.post("/api/v1/jobs/", {"task": "semantic"}, format="json"), 400)
    assert "image" in error["message"]


@pytest.mark.parametrize("case", [c for c in cases() if c.expect != "ok"], ids=lambda c: c.name)
def test_bad_uploads_get_their_4xx_and_create_no_job(alice, sent, case):
    assert_error(submit(alice, "semantic", data=case.data, name=case.filename), case.expect)
    assert Job.objects.count() == 0 and sent.calls == []


@pytest.mark.parametrize("case", [c for c in cases() if c.expect == "ok"], ids=lambda c: c.name)
def test_odd_but_valid_uploads_become_jobs_at_their_displayed_size(alice, sent, case):
    body = submit(alice, "semantic", data=case.data, name=case.filename).json()
    assert body["status"] == "queued"
    assert (body["input"]["width"], body["input"]["height"]) == case.size


def test_an_upload_over_the_byte_limit_is_413(alice, sent, settings):
    settings.MAX_UPLOAD_BYTES = 2048
    assert_error(submit(alice, data=b"\xff\xd8" + b"\0" * 4000, name="big.jpg"), 413, "upload_too_large")
    big_body = b"\0" * (2048 + 70 * 1024)
    assert_error(submit(alice, data=big_body, name="huge.jpg"), 413, "upload_too_large")


def test_unauthenticated_requests_get_401(anonymous):
    for response in (anonymous.get("/api/v1/jobs/"), anonymous.get("/api/v1/models/"), submit(anonymous)):
        assert_error(response, 401, "not_authenticated")
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert_error(anonymous.get("/api/v1/jobs/"), 401, "authentication_failed")


def test_when_the_broker_is_down_submit_is_503_and_nothing_is_kept(alice, sent):
    def job_folders():
        return set(default_storage.listdir("jobs")[0]) if default_storage.exists("jobs") else set()

    before = job_folders()
    sent.fail = True
    response = submit(alice, HTTP_IDEMPOTENCY_KEY="retry-me")
    assert_error(response, 503, "queue_unavailable")
    assert response["Retry-After"] == "30"
    assert not Job.objects.exists() and job_folders() == before

    # The client's retry, once the broker is back, creates the job: the key was not spent.
    sent.fail = False
    retried = submit(alice, HTTP_IDEMPOTENCY_KEY="retry-me")
    assert retried.status_code == 202 and Job.objects.get().status == "queued"


def test_list_shows_only_my_jobs_newest_first_with_filters(alice, bob, sent):
    first = submit(alice, "semantic").json()["id"]
    second = submit(alice, "instance").json()["id"]
    submit(bob, "semantic")
    body = alice.get("/api/v1/jobs/").json()
    assert body["count"] == 2 and [j["id"] for j in body["results"]] == [second, first]
    assert [j["id"] for j in alice.get("/api/v1/jobs/?task=semantic").json()["results"]] == [first]
    assert alice.get("/api/v1/jobs/?model=yolov8n_seg_coco").json()["count"] == 1
    assert alice.get("/api/v1/jobs/?status=succeeded").json()["count"] == 0
    assert_error(alice.get("/api/v1/jobs/?status=exploded"), 400)


def test_list_is_paginated(alice, sent):
    for _ in range(3):
        submit(alice)
    page = alice.get("/api/v1/jobs/?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert len(alice.get(page["next"]).json()["results"]) == 1
    assert_error(alice.get("/api/v1/jobs/?page=99"), 404, "not_found")


def test_another_users_job_is_404_on_every_url(alice, bob, sent):
    job = submit(alice).json()
    urls = [job["url"], job["url"] + "cancel/"]
    assert_error(bob.get(job["url"]), 404, "not_found")
    assert_error(bob.post(urls[1]), 404, "not_found")
    assert_error(bob.delete(job["url"]), 404, "not_found")
    unsigned_input = job["input"]["url"].split("?")[0]
    assert_error(bob.get(unsigned_input), 404, "not_found")
    assert alice.get(job["url"]).json()["status"] == "queued"


def test_unknown_or_malformed_job_ids_are_404(alice):
    assert_error(alice.get(f"/api/v1/jobs/{uuid.uuid4()}/"), 404, "not_found")
    assert_error(alice.get("/api/v1/jobs/not-a-uuid/"), 404, "not_found")
    assert_error(alice.get("/api/v1/nowhere/"), 404, "not_found")


def test_cancel_a_queued_job_then_409_once_it_has_ended(alice, sent):
    job = submit(alice).json()
    response = alice.post(job["url"] + "cancel/")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert_error(alice.post(job["url"] + "cancel/"), 409, "job_finished")


def test_delete_removes_the_job_and_its_files(alice, sent):
    job = submit(alice).json()
    row = Job.objects.get(pk=job["id"])
    assert default_storage.exists(row.input.name)
    assert alice.delete(job["url"]).status_code == 204
    assert not Job.objects.filter(pk=job["id"]).exists()
    assert not default_storage.exists(row.input.name)
    assert_error(alice.get(job["url"]), 404)


def test_file_urls_are_signed_and_expire(alice, anonymous, sent, settings):
    job = submit(alice).json()
    signed = job["input"]["url"]
    response = anonymous.get(signed)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert alice.get(signed.split("?")[0]).status_code == 200  # the owner needs no token
    tampered = signed[:-3] + ("AAA" if not signed.endswith("AAA") else "BBB")
    assert_error(anonymous.get(tampered), 404)
    other_file = signed.replace("input.png", "mask.png")
    assert_error(anonymous.get(other_file), 404)
    settings.FILE_URL_MAX_AGE = -1  # every token is now too old
    assert_error(anonymous.get(signed), 404)


def test_models_lists_every_model_with_the_workers_serving_it_and_the_defaults(alice):
    body = alice.get("/api/v1/models/").json()
    by_name = {m["name"]: m for m in body["models"]}
    assert body["defaults"] == {
        "instance": "yolov8n_seg_coco",
        "matte": "selfie_segmentation_mediapipe",
        "semantic": "deeplabv3_mnv2_pascal",
    }
    voc = by_name["deeplabv3_mnv2_pascal"]
    assert voc["task"] == "semantic" and voc["labels"][15] == "person" and voc["input_size"] == [513, 513]
    assert voc["available"] is True and voc["workers"] == ["api-tests@localhost"] and voc["default"] is True
    assert voc["licence"] == "Apache-2.0" and voc["weights"]["sha256"].startswith("350af47f")
    assert len(by_name["yolov8n_seg_coco"]["labels"]) == 80
    assert by_name["selfie_segmentation_mediapipe"]["task"] == "matte"
    # Known from its folder alone: listed, but no worker serves it.
    heavy = by_name["mask_rcnn_coco"]
    assert heavy["available"] is False and heavy["workers"] == [] and heavy["default"] is False


def test_a_model_a_worker_announces_is_listed_without_its_folder_here(alice, settings, tmp_path):
    announced = {spec.name for spec in light_specs()}
    settings.SEGMENT_MODELS_DIR = tmp_path  # the web host has no model folder at all
    models = alice.get("/api/v1/models/").json()["models"]
    assert {m["name"] for m in models} == announced
    assert all(m["available"] and m["labels"] for m in models)


def test_method_not_allowed_is_json(alice):
    assert_error(alice.put("/api/v1/models/"), 405, "method_not_allowed")


def test_a_malformed_multipart_body_is_a_json_400(alice, sent):
    response = alice.generic(
        "POST", "/api/v1/jobs/", b"--nope\r\ngarbage", content_type="multipart/form-data; boundary=abc"
    )
    assert response.status_code == 400
    assert "error" in response.json()


def test_a_flood_of_form_fields_is_a_json_400(alice, sent):
    fields = {f"f{i}": "x" for i in range(1500)}
    response = alice.post("/api/v1/jobs/", {"task": "semantic", **fields}, format="multipart")
    assert response.status_code == 400
    assert "error" in response.json()


def test_too_many_classes_is_a_400(alice, sent):
    assert_error(submit(alice, "semantic", classes=",".join(["person"] * 101)), 400, "invalid_request")


def test_a_4_mb_classes_field_is_refused_on_its_length_before_it_is_split(alice, sent, figure):
    field = JobCreateSerializer().fields["classes"]
    with pytest.raises(ValidationError) as refused:
        field.to_internal_value("person," * 600_000)
    assert refused.value.get_codes() == ["too_long"]  # not the list's own check, after splitting
    started = time.process_time()
    response = submit(alice, "semantic", classes="person," * 600_000)
    spent = time.process_time() - started
    assert_error(response, 400, "invalid_request")
    assert "no more than 100 elements" in response.json()["error"]["message"]
    figure(f"a {len('person,' * 600_000) / 1e6:.1f} MB classes field: 400 after {spent * 1000:.0f} ms of CPU")


def test_the_default_model_is_the_heavy_one_while_a_worker_serves_it(alice, sent, served_models):
    heavy = [spec for spec in local_specs().values() if spec.weights.optional]
    served_models(heavy, worker="heavy@localhost")
    assert submit(alice, "semantic").json()["model"] == "deeplabv3plus_xception_pascal"
    body = submit(alice, "instance").json()
    assert body["model"] == "mask_rcnn_coco"
    assert sent.calls[-1]["queue"] == "mask_rcnn_coco"
    assert Job.objects.get(pk=body["id"]).queue == "mask_rcnn_coco"
    assert alice.get("/api/v1/models/").json()["defaults"]["instance"] == "mask_rcnn_coco"


def test_a_model_no_live_worker_serves_is_a_503_with_retry_after(alice, sent):
    response = submit(alice, "instance", model="mask_rcnn_coco")
    error = assert_error(response, 503, "model_unavailable")
    assert "No live worker serves model 'mask_rcnn_coco'" in error["message"]
    assert response["Retry-After"] == "30"
    assert Job.objects.count() == 0 and sent.calls == []


def test_a_lost_database_is_a_503_with_retry_after_not_a_500(alice, monkeypatch):
    from django.db import OperationalError

    from jobs.api.views import JobViewSet

    def unreachable(self):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(JobViewSet, "get_queryset", unreachable)
    alice.raise_request_exception = False  # as in production: the handler answers
    response = alice.get("/api/v1/jobs/")
    assert_error(response, 503, "database_unavailable")
    assert response["Retry-After"] == "5"


def test_a_workers_announced_spec_wins_over_this_hosts_folder(alice, served_models):
    from dataclasses import replace

    local = local_specs()["mask_rcnn_coco"]  # known here from its folder, announced by no one yet
    served_models([replace(local, description="as the worker has it", priority=1)], worker="newer@localhost")
    listed = {m["name"]: m for m in alice.get("/api/v1/models/").json()["models"]}
    assert listed["mask_rcnn_coco"]["description"] == "as the worker has it"
    assert listed["mask_rcnn_coco"]["default"] is False  # its priority, as announced: below yolov8's 10


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/photo.jpg",
        "http://2130706433/photo.jpg",  # 127.0.0.1, spelt as one number
        "http://[::ffff:10.0.0.1]/photo.jpg",
        "https://127.1:8443/photo.jpg",
    ],
)
def test_an_image_url_whose_host_is_a_private_address_is_refused_at_submit(alice, sent, url):
    response = alice.post("/api/v1/jobs/", {"image_url": url, "task": "semantic"}, format="multipart")
    error = assert_error(response, 400, "invalid_image_url")
    assert "public addresses only" in error["message"]
    assert Job.objects.count() == 0 and sent.calls == []


def test_an_image_url_naming_a_host_is_checked_by_the_worker_not_at_submit(alice, sent):
    # No DNS lookup in a web thread: where the name leads is the fetcher's to check.
    response = alice.post(
        "/api/v1/jobs/",
        {"image_url": "http://photos.example/cat.jpg", "task": "semantic"},
        format="multipart",
    )
    assert response.status_code == 202 and len(sent.calls) == 1


def test_an_image_url_host_the_operator_allows_may_be_a_private_address(alice, sent, settings):
    settings.IMAGE_URL_ALLOWED_HOSTS = ["127.0.0.1"]
    response = alice.post(
        "/api/v1/jobs/",
        {"image_url": "http://127.0.0.1:9000/cat.jpg", "task": "semantic"},
        format="multipart",
    )
    assert response.status_code == 202
