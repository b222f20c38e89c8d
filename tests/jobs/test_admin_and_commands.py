import io

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from jobs.models import Job

from .helpers import submit

pytestmark = pytest.mark.django_db


def test_issue_token_creates_the_user_once_and_prints_a_working_token(django_user_model, client):
    out = io.StringIO()
    call_command("issue_token", "carol", stdout=out)
    token = out.getvalue().strip()
    assert Token.objects.get(key=token).user.username == "carol"
    again = io.StringIO()
    call_command("issue_token", "carol", stdout=again)
    assert again.getvalue().strip() == token
    assert django_user_model.objects.filter(username="carol").count() == 1
    assert client.get("/api/v1/models/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def test_admin_lists_filters_and_shows_a_job_with_its_images(admin_client, alice, sent):
    job_id = submit(alice).json()["id"]
    listing = admin_client.get("/admin/jobs/job/?status__exact=queued")
    assert listing.status_code == 200 and job_id in listing.content.decode()
    found = admin_client.get(f"/admin/jobs/job/?q={job_id}")
    assert job_id in found.content.decode()
    detail = admin_client.get(f"/admin/jobs/job/{job_id}/change/").content.decode()
    assert f"/api/v1/jobs/{job_id}/files/input.png?token=" in detail and "<img" in detail


def test_admin_search_by_a_non_uuid_does_not_error(admin_client):
    assert admin_client.get("/admin/jobs/job/?q=not-a-uuid").status_code == 200


def test_admin_requires_staff(client, alice, sent):
    job_id = submit(alice).json()["id"]
    client.force_login(alice.user)
    response = client.get(f"/admin/jobs/job/{job_id}/change/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Job.objects.filter(pk=job_id).exists()
