"""The OpenAPI schema: valid OpenAPI 3, and true to every answer the API gives.

schemathesis generates requests for every operation from the schema itself (random
fields, headers, query strings, bodies and files) and checks each answer: no 5xx, and a
status, content type, headers and body that the schema describes.
"""

import pytest
import schemathesis
import yaml
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from rest_framework.authtoken.models import Token
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from jobs.api import submission

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Enough examples per operation to reach its error paths; each runs in-process.
FUZZ = hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)


def test_the_schema_is_valid_openapi_3_and_lists_every_endpoint(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    document = yaml.safe_load(response.content)
    validate(document)
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/v1/account/",
        "/api/v1/account/rotate-webhook-secret/",
        "/api/v1/batches/",
        "/api/v1/batches/{id}/",
        "/api/v1/jobs/",
        "/api/v1/jobs/{id}/",
        "/api/v1/jobs/{id}/cancel/",
        "/api/v1/jobs/{id}/files/{name}",
        "/api/v1/models/",
        "/model/predict",
        "/model/metadata",
        "/model/labels",
        "/semantic",
        "/instance",
        "/v1.0/removebg",
        "/api/remove",
    }


def test_swagger_ui_is_served_from_our_own_static_files(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html and "cdn" not in html.lower()


@pytest.fixture
def api_schema(transactional_db, settings, served_models, monkeypatch):
    # Real WSGI requests close the connection after each one (request_finished), so the
    # data must be committed: transactional_db. No worker runs here: a generated image that
    # happens to decode is answered at once as still queued (202), as after a wait runs out.
    settings.MAX_WAIT_SECONDS = 2
    settings.COMPAT_TIMEOUT = 1
    monkeypatch.setattr(submission, "wait_until_finished", lambda job_id, seconds: None)
    return schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def token(django_user_model):
    user, _ = django_user_model.objects.get_or_create(username="fuzzer")
    return Token.objects.get_or_create(user=user)[0].key


@schema.parametrize()
@FUZZ
def test_every_answer_to_a_token_holder_matches_the_schema(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)


@schema.parametrize()
@hypothesis_settings(FUZZ, max_examples=10)
def test_every_answer_without_a_token_matches_the_schema(case):
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
@hypothesis_settings(FUZZ, max_examples=5)
def test_every_answer_to_a_client_accepting_only_html_or_images_matches_the_schema(case, token):
    # A browser's or an image view's Accept header: a documented 406, or the file itself.
    accept = "image/*" if "/files/" in case.path else "text/html"
    case.call_and_validate(headers={"Authorization": f"Token {token}", "Accept": accept}, checks=CHECKS)
