import io

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from jobs.models import Job
from tests.conftest import REPO
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


def finished_job(client, task, summary):
    """A job of `task` that succeeded with `summary`, as a worker records it."""
    job = Job.objects.get(pk=submit(client, task=task).json()["id"])
    assert job.claim("w1@host") and job.succeed(summary, {}, 1, 1)
    return job


def admin_page(admin_client, job):
    response = admin_client.get(f"/admin/jobs/job/{job.id}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_admin_shows_a_semantic_summary_as_a_table_with_the_raw_json_folded(admin_client, alice, sent):
    summary = {
        "image_size": [64, 48],
        "classes": [
            {"id": 0, "label": "background", "pixels": 2000, "fraction": 0.651042},
            {"id": 15, "label": "person", "pixels": 1072, "fraction": 0.348958},
        ],
    }
    page = admin_page(admin_client, finished_job(alice, "semantic", summary))

    assert '<table class="job-summary">' in page
    assert "<td>15</td><td>person</td><td>1,072</td><td>34.90 %</td>" in page
    assert "<td>background</td><td>2,000</td><td>65.10 %</td>" in page
    folded = page[page.index("<details><summary>raw JSON</summary>") :]
    assert "&quot;label&quot;: &quot;person&quot;" in folded.split("</details>")[0]


def test_admin_shows_an_instance_summary_with_labels_scores_and_boxes(admin_client, alice, sent):
    summary = {
        "image_size": [451, 300],
        "instances": [
            {
                "index": 1,
                "label": "cat",
                "class_id": 15,
                "score": 0.8912,
                "bbox": [2, 5, 440, 290],
                "area": 102443,
            },
            {
                "index": 2,
                "label": "<b>dog</b>",
                "class_id": 16,
                "score": 0.5,
                "bbox": [0, 0, 9, 9],
                "area": 50,
            },
        ],
        "polygon_budget": {"max_points": 10000, "points": 91, "simplified": False, "truncated": True},
    }
    page = admin_page(admin_client, finished_job(alice, "instance", summary))

    assert "<td>1</td><td>cat</td><td>0.891</td><td>2, 5, 440 x 290</td><td>102,443</td>" in page
    assert "<td>&lt;b&gt;dog&lt;/b&gt;</td>" in page and "<b>dog</b>" not in page  # escaped
    assert "polygons: 91 points of 10,000, truncated" in page


def test_admin_shows_a_mattes_foreground_fraction_and_mean_alpha(admin_client, alice, sent):
    summary = {
        "image_size": [64, 48],
        "foreground": "person",
        "foreground_fraction": 0.25,
        "mean_alpha": 0.31234,
    }
    page = admin_page(admin_client, finished_job(alice, "matte", summary))

    assert "<td>person</td><td>25.00 %</td><td>0.312</td>" in page


def test_admin_job_list_rows_stay_on_one_line(admin_client, alice, sent):
    job_id = submit(alice).json()["id"]
    listing = admin_client.get("/admin/jobs/job/").content.decode()

    assert f'<span title="{job_id}">{job_id[:8]}</span>' in listing
    assert "/static/jobs/admin.css" in listing
    css = (REPO / "jobs/static/jobs/admin.css").read_text()
    assert "#result_list td" in css and "white-space: nowrap" in css


def test_admin_cancels_the_selected_queued_and_running_jobs_only(admin_client, alice, sent):
    queued, running, done = (Job.objects.get(pk=submit(alice).json()["id"]) for _ in range(3))
    running.claim("w1@host")
    done.claim("w1@host")
    done.succeed({}, {}, 1, 1)

    response = admin_client.post(
        "/admin/jobs/job/",
        {"action": "cancel_jobs", "_selected_action": [str(j.id) for j in (queued, running, done)]},
        follow=True,
    )

    statuses = {j.pk: Job.objects.get(pk=j.pk).status for j in (queued, running, done)}
    assert statuses == {queued.pk: "canceled", running.pk: "canceled", done.pk: "succeeded"}
    assert "2 jobs canceled. 1 left as they were" in response.content.decode()


def test_admin_runs_a_failed_job_again_as_a_fresh_queued_job(admin_client, alice, sent, settings):
    failed, done = (Job.objects.get(pk=submit(alice).json()["id"]) for _ in range(2))
    for _ in range(settings.JOB_MAX_ATTEMPTS):
        failed.claim("w1@host")
    failed.fail("worker_lost", "The worker running this job stopped 3 times; giving up.")
    done.claim("w1@host")
    done.succeed({"classes": []}, {"mask": "mask.png"}, 1, 1)
    sent.calls.clear()

    response = admin_client.post(
        "/admin/jobs/job/",
        {"action": "run_failed_jobs_again", "_selected_action": [str(failed.id), str(done.id)]},
        follow=True,
    )

    failed.refresh_from_db()
    assert failed.status == "queued" and failed.stage == "queued" and failed.attempts == 0
    assert failed.error_code == "" and failed.error_message == "" and failed.finished_at is None
    assert failed.enqueued_at is not None
    assert [(c["args"], c["task_id"]) for c in sent.calls] == [([str(failed.id)], str(failed.id))]
    assert Job.objects.get(pk=done.pk).status == "succeeded"  # a succeeded job is not run again
    assert "1 job queued again. 1 left as they were: they had not failed." in response.content.decode()
    assert failed.claim("w2@host")  # a fresh attempt budget: a worker can take it
