import io

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from jobs.models import Job
from tests.jobs.helpers import submit

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


@pytest.fixture
def delivered_job(alice, sent, allow_local, django_capture_on_commit_callbacks):
    """A finished job whose webhook failed twice with 500 and then got 200."""
    from django.utils import timezone

    from jobs.models import WebhookAttempt, WebhookDelivery

    job = Job.objects.get(pk=submit(alice, webhook_url=allow_local("http://127.0.0.1:9/hook")).json()["id"])
    job.claim("w1@host")
    job.succeed({}, {}, 1, 1)
    delivery = WebhookDelivery.objects.get(job=job)
    for number, status in enumerate([500, 500, 200], start=1):
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=timezone.now(),
            duration_ms=12,
            status_code=status,
            response_body="upstream broke" if status == 500 else "thanks",
            error="HTTP 500" if status == 500 else "",
        )
    WebhookDelivery.objects.filter(pk=delivery.pk).update(state="delivered", next_attempt_at=None)
    return job


def test_admin_shows_a_jobs_webhook_attempts_inline(admin_client, delivered_job):
    page = admin_client.get(f"/admin/jobs/job/{delivered_job.id}/change/").content.decode()
    assert "http://127.0.0.1:9/hook" in page and "delivered" in page
    assert page.count("<td>500</td>") == 2 and page.count("<td>200</td>") == 1
    assert "upstream broke" in page


def test_admin_redelivers_the_webhooks_of_selected_jobs(
    admin_client, delivered_job, monkeypatch, django_capture_on_commit_callbacks
):
    from jobs.models import WebhookDelivery
    from jobs.webhooks import outbox

    queued = []
    monkeypatch.setattr(outbox, "send", lambda delivery_id, countdown=None: queued.append(delivery_id))
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/jobs/job/", {"action": "redeliver_webhooks", "_selected_action": [str(delivered_job.id)]}
        )
    assert response.status_code == 302
    delivery = WebhookDelivery.objects.get(job=delivered_job)
    assert delivery.state == "pending" and delivery.failures == 0
    assert queued == [delivery.id]


def test_admin_lists_deliveries_and_redelivers_from_there(
    admin_client, delivered_job, monkeypatch, django_capture_on_commit_callbacks
):
    from jobs.models import WebhookDelivery
    from jobs.webhooks import outbox

    delivery = WebhookDelivery.objects.get(job=delivered_job)
    listing = admin_client.get("/admin/jobs/webhookdelivery/?state__exact=delivered").content.decode()
    assert str(delivery.id) in listing
    detail = admin_client.get(f"/admin/jobs/webhookdelivery/{delivery.id}/change/").content.decode()
    assert "upstream broke" in detail and str(delivered_job.id) in detail
    queued = []
    monkeypatch.setattr(outbox, "send", lambda delivery_id, countdown=None: queued.append(delivery_id))
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/jobs/webhookdelivery/", {"action": "redeliver", "_selected_action": [str(delivery.id)]}
        )
    assert queued == [delivery.id]
