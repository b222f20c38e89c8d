"""Idempotency-Key: a retried submit gets the job it created, never a second one."""

import pytest
from django.core.files.storage import default_storage

from jobs.lifecycle import services
from jobs.models import Job
from tests.jobs.helpers import assert_error, upload

pytestmark = pytest.mark.django_db


def submit_with_key(client, key):
    return client.post(
        "/api/v1/jobs/", {"image": upload(), "task": "semantic"}, format="multipart", HTTP_IDEMPOTENCY_KEY=key
    )


def test_a_retried_submit_answers_200_with_the_same_job(alice, sent):
    first = submit_with_key(alice, "upload-7f3a")
    again = submit_with_key(alice, "upload-7f3a")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"]
    assert Job.objects.count() == 1 and len(sent.calls) == 1
    _, files = default_storage.listdir(f"jobs/{first.json()['id']}")
    assert files == ["input.png"]


def test_keys_belong_to_their_user(alice, bob, sent):
    assert submit_with_key(alice, "k1").json()["id"] != submit_with_key(bob, "k1").json()["id"]
    assert submit_with_key(alice, "k2").status_code == 202
    assert Job.objects.count() == 3


@pytest.mark.parametrize("key", ["has space", "x" * 256, "caf\u00e9"])
def test_a_bad_key_is_400_and_creates_nothing(alice, sent, key):
    response = submit_with_key(alice, key.encode("utf-8").decode("latin-1"))
    assert_error(response, 400, "invalid_idempotency_key")
    assert Job.objects.count() == 0


def test_two_retries_racing_past_the_check_still_make_one_job(alice, sent, monkeypatch):
    first = submit_with_key(alice, "raced").json()["id"]
    real, lookups = services.job_with_key, []

    def miss_first(owner, key):  # this request looked before the first one's row existed
        lookups.append(key)
        return None if len(lookups) == 1 else real(owner, key)

    monkeypatch.setattr(services, "job_with_key", miss_first)
    before = set(default_storage.listdir("jobs")[0])
    again = submit_with_key(alice, "raced")
    assert again.status_code == 200 and again.json()["id"] == first
    assert Job.objects.count() == 1 and len(lookups) == 2
    assert set(default_storage.listdir("jobs")[0]) == before  # the loser's stored input is gone
