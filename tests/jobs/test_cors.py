"""CORS: a web app on an allowed origin may call the API with its token and read the files;
any other origin gets no CORS headers, so the browser keeps its page out."""

from urllib.parse import urlsplit

import pytest

from jobs.models import Job
from tests.jobs.helpers import upload
from workers.pipeline import run_job

pytestmark = pytest.mark.django_db

APP = "https://app.example.com"


@pytest.fixture(autouse=True)
def allowed_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = [APP]


def post_job(client):
    return client.post(
        "/api/v1/jobs/", {"image": upload(), "task": "semantic"}, format="multipart", HTTP_ORIGIN=APP
    )


def preflight(client, origin, path="/api/v1/jobs/", method="POST"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, idempotency-key, prefer",
    )


def test_a_preflight_from_an_allowed_origin_allows_the_token_and_our_headers(anonymous):
    response = preflight(anonymous, APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "idempotency-key", "prefer"} <= allowed
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response  # tokens, never cookies


@pytest.mark.parametrize("origin", ["https://evil.example", "https://app.example.com.evil.example", "null"])
def test_a_preflight_from_another_origin_gets_no_cors_headers(anonymous, origin):
    response = preflight(anonymous, origin)
    assert not any(name.startswith("Access-Control-") for name in response.headers)


def test_no_origin_is_allowed_by_default(anonymous, settings):
    settings.CORS_ALLOWED_ORIGINS = []
    assert "Access-Control-Allow-Origin" not in preflight(anonymous, APP)


def test_answers_expose_location_and_retry_after_even_from_the_read_cache(alice, sent):
    response = post_job(alice)
    assert response.status_code == 202 and response["Access-Control-Allow-Origin"] == APP
    exposed = {h.strip() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Retry-After"} <= exposed
    url = response["Location"]
    for _ in range(2):  # the second read comes from the status cache, before the views
        read = alice.get(url, HTTP_ORIGIN=APP)
        assert read.status_code == 200 and read["Access-Control-Allow-Origin"] == APP


def test_a_file_download_carries_the_headers_so_a_canvas_can_read_its_pixels(alice, sent, engines):
    job_id = post_job(alice).json()["id"]
    run_job(job_id, "inline@test")
    job = alice.get(f"/api/v1/jobs/{job_id}/").json()
    assert job["status"] == Job.Status.SUCCEEDED
    mask = urlsplit(job["result"]["files"]["mask"])
    response = alice.get(f"{mask.path}?{mask.query}", HTTP_ORIGIN=APP)
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == APP


def test_the_admin_never_answers_other_origins(anonymous):
    assert "Access-Control-Allow-Origin" not in preflight(anonymous, APP, path="/admin/", method="GET")
