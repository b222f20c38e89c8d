"""Nothing of alice's leaks to bob: every URL of her jobs is a 404 for him, as for a job that
does not exist, whatever the method; and none of his requests changes anything of hers.

Alice's jobs are real: run in this process by the pipeline with the real light models,
with real output files, and one with webhook deliveries attempted to a local receiver.
The URLs under test are every URL in her jobs' JSON (walked, not listed by hand), the
routes the router gives a job, and forgeries of her signed file URLs.
"""

import io
import re
import uuid
from collections import Counter

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from jobs.models import Job, WebhookDelivery
from jobs.webhooks import outbox
from tests.jobs.helpers import assert_error, upload
from tests.jobs.receivers import ScriptedReceiver
from tests.security.mutations import photo
from workers.pipeline import run_job

pytestmark = pytest.mark.django_db

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# The methods each kind of job URL answers (jobs/urls.py: the router's detail route and
# its cancel action, and the file view). Any other method is a 405 for everyone, job or no
# job, so it says nothing about whether a job exists.
ROUTED = {"detail": {"GET", "HEAD", "DELETE"}, "cancel": {"POST"}, "file": {"GET", "HEAD"}}
SERVER = "http://testserver"
ALICES_KEY = "retry-1"


class Outbox:
    """Records the webhook deliveries queued, so the test attempts them itself."""

    def __init__(self):
        self.queued = []

    def send_task(self, name, args=None, **kwargs):
        self.queued.append(args[0])


@pytest.fixture
def receiver(settings):
    started = ScriptedReceiver()
    settings.WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{started.port}"]
    yield started
    started.close()


def image():
    buffer = io.BytesIO()
    photo((96, 72)).save(buffer, "JPEG")
    return buffer.getvalue()


def post_job(client, task="semantic", idempotency_key="", **fields):
    data = {"image": upload("a.jpg", image()), "task": task, **fields}
    return client.post("/api/v1/jobs/", data, format="multipart", HTTP_IDEMPOTENCY_KEY=idempotency_key)


@pytest.fixture
def alices_jobs(alice, bob, sent, engines, receiver, monkeypatch, django_capture_on_commit_callbacks):
    """{kind: job JSON} of alice's jobs: one succeeded per task, one succeeded with its
    webhook deliveries attempted, one still queued (so a leaked cancel would show)."""
    deliveries = Outbox()
    monkeypatch.setattr(outbox, "current_app", deliveries)
    jobs = {
        "semantic": post_job(alice, idempotency_key=ALICES_KEY),
        "instance": post_job(alice, "instance", classes="person"),
        "webhook": post_job(alice, webhook_url=receiver.url, webhook_events="running,completed"),
        "queued": post_job(alice),
    }
    ids = {kind: response.json()["id"] for kind, response in jobs.items()}
    for kind in ("semantic", "instance", "webhook"):
        with django_capture_on_commit_callbacks(execute=True):
            run_job(ids[kind], worker="w@h")
    for delivery_id in deliveries.queued:  # running, then completed, as the worker would
        with django_capture_on_commit_callbacks(execute=True):
            outbox.deliver(delivery_id)
    assert len(receiver.requests) == 2  # both deliveries made, so the JSON shows their attempts
    post_job(bob)  # so that bob's list is not empty by accident
    return {kind: alice.get(f"/api/v1/jobs/{job_id}/").json() for kind, job_id in ids.items()}


def urls_in(value):
    """Every URL of this server in a JSON document, as a path with its query."""
    if isinstance(value, dict):
        return [url for item in value.values() for url in urls_in(item)]
    if isinstance(value, list):
        return [url for item in value for url in urls_in(item)]
    if isinstance(value, str) and value.startswith(SERVER + "/"):
        return [value[len(SERVER) :]]
    return []


def kind_of(path):
    if "/files/" in path:
        return "file"
    return "cancel" if path.endswith("/cancel/") else "detail"


def forgeries(signed):
    """A signed file URL without its token, with a tampered token, and with an empty one."""
    path, token = signed.split("?token=")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    return [path, f"{path}?token={tampered}", f"{path}?token="]


def urls_of(jobs):
    """(path, kind) of every URL bob must not reach: those in the JSON and the router's
    routes for each job, with each signed file URL replaced by its forgeries (a signed
    URL itself is a bearer link, by design: see the anonymous test)."""
    urls = set()
    for job in jobs.values():
        found = urls_in(job)
        detail = f"/api/v1/jobs/{job['id']}/"
        urls.update([url for url in found if "?token=" not in url] + [detail, detail + "cancel/"])
        signed = [url for url in found if "?token=" in url]
        for url in signed:
            urls.update(forgeries(url))
            token = url.split("?token=")[1]
            urls.update(f"{other.split('?')[0]}?token={token}" for other in signed if other != url)
    return sorted((url, kind_of(url)) for url in urls)


def signed_urls(jobs):
    return sorted(url for job in jobs.values() for url in urls_in(job) if "?token=" in url)


def answer(client, method, path):
    response = client.generic(method, path)
    body = response.json() if response.content else None
    return response.status_code, body


def elsewhere(path, job_ids):
    """The same URL for a job that does not exist."""
    return re.sub("|".join(job_ids), str(uuid.UUID(int=7)), path)


def test_bob_gets_404_on_every_url_of_alices_jobs_and_changes_nothing(alices_jobs, alice, bob, figure):
    before = snapshot(alices_jobs)
    urls = urls_of(alices_jobs)
    ids = [job["id"] for job in alices_jobs.values()]
    assert {kind for _, kind in urls} == set(ROUTED)
    routed, unrouted = Counter(), Counter()
    for path, kind in urls:
        for method in METHODS:
            status, body = answer(bob, method, path)
            # Indistinguishable from a job that does not exist: same status, same body.
            assert (status, body) == answer(bob, method, elsewhere(path, ids)), (method, path)
            if method in ROUTED[kind]:
                assert status == 404, (method, path, status, body)
                assert method == "HEAD" or body["error"]["code"] == "not_found"
                routed[status] += 1
            else:
                unrouted[f"{method if method == 'OPTIONS' else 'other'} {status}"] += 1
    assert snapshot(alices_jobs) == before  # bob's DELETEs and cancels did nothing

    # Alice still reaches all of it (as the owner she needs no signature), and her routes
    # do exist: bob's 404s were not those of a route with no handler.
    for path, kind in urls:
        if kind != "cancel":
            assert alice.get(path).status_code == 200, path
    queued = alices_jobs["queued"]
    assert alice.post(f"/api/v1/jobs/{queued['id']}/cancel/").json()["status"] == "canceled"
    assert alice.delete(f"/api/v1/jobs/{alices_jobs['semantic']['id']}/").status_code == 204

    files = sum(kind == "file" for _, kind in urls)
    others = ", ".join(f"{n}x {outcome}" for outcome, n in sorted(unrouted.items()))
    figure(
        f"user B: {len(urls)} URLs of A's {len(alices_jobs)} jobs ({len(urls) - files} job, {files} file) "
        f"x {len(METHODS)} methods = {routed.total() + unrouted.total()} requests: all "
        f"{routed.total()} to a routed method 404 not_found; the unrouted rest ({others}) answered "
        "exactly as for a job that does not exist; A's jobs, deliveries and files unchanged"
    )


def snapshot(jobs):
    """What bob must not be able to change: the rows, their deliveries and their files."""
    ids = [job["id"] for job in jobs.values()]
    rows = list(Job.objects.filter(pk__in=ids).order_by("pk").values())
    deliveries = list(WebhookDelivery.objects.filter(job__in=ids).order_by("pk").values("pk", "state"))
    files = {job_id: sorted(default_storage.listdir(f"jobs/{job_id}")[1]) for job_id in ids}
    return rows, deliveries, files


def test_anonymous_gets_401_on_job_urls_and_404_on_files_without_a_valid_signature(
    alices_jobs, anonymous, figure
):
    ids = [job["id"] for job in alices_jobs.values()]
    outcomes = Counter()
    for path, kind in urls_of(alices_jobs):
        for method in METHODS:
            response = anonymous.generic(method, path)
            outcomes[response.status_code] += 1
            same = anonymous.generic(method, elsewhere(path, ids))
            assert (response.status_code, response.content) == (same.status_code, same.content)
            if kind != "file":  # authentication comes before routing: 401 for any method
                assert response.status_code == 401, (method, path)
                assert method == "HEAD" or response.json()["error"]["code"] == "not_authenticated"
            elif method in ROUTED[kind]:  # files take no token: without a valid signature, 404
                assert_error_or_head(response, method, 404, "not_found")
    # A signed URL is a bearer link, by design: image views load it with no header.
    signed = signed_urls(alices_jobs)
    for url in signed:
        assert anonymous.get(url).status_code == 200, url
    detail = ", ".join(f"{n}x{status}" for status, n in sorted(outcomes.items()))
    figure(
        f"anonymous: {sum(outcomes.values())} requests to A's job and forged file URLs ({detail}): "
        f"401 on every job URL, 404 on every file URL without a valid signature; "
        f"{len(signed)} signed URLs open, as designed"
    )


def assert_error_or_head(response, method, status, code):
    if method == "HEAD":
        assert response.status_code == status
    else:
        assert_error(response, status, code)


def test_a_files_signature_opens_no_other_path(alices_jobs, anonymous):
    job = alices_jobs["semantic"]
    token = job["input"]["url"].split("?token=")[1]
    base = f"/api/v1/jobs/{job['id']}/files/"
    other_job = alices_jobs["instance"]["id"]
    for name in ["mask.png", "overlay.jpg", "INPUT.JPG", "input.jpg.png", "..%2Finput.jpg", "input.jpg%00"]:
        assert_error(anonymous.get(f"{base}{name}?token={token}"), 404, "not_found")
    assert_error(anonymous.get(f"/api/v1/jobs/{other_job}/files/input.jpg?token={token}"), 404, "not_found")
    assert anonymous.get(f"{base}input.jpg?token={token}").status_code == 200  # its own file: yes


def test_bobs_list_and_its_filters_never_show_alices_jobs(alices_jobs, bob):
    ids = [job["id"] for job in alices_jobs.values()]
    queries = ["", "?page_size=100", "?status=succeeded", "?status=queued", "?task=semantic"]
    queries += ["?task=instance", "?model=deeplabv3_mnv2_pascal", "?model=yolov8n_seg_coco"]
    queries += [f"?id={ids[0]}", "?owner=alice", "?owner__username=alice", "?search=alice", "?ordering=owner"]
    seen = 0
    for query in queries:
        response = bob.get(f"/api/v1/jobs/{query}")
        assert response.status_code == 200, query
        assert not [job_id for job_id in ids if job_id in response.content.decode()], query
        seen += response.json()["count"]
    assert seen  # bob's own job is listed: the filters were not simply empty


def test_bob_reusing_alices_idempotency_key_gets_his_own_job(alices_jobs, bob, sent):
    response = post_job(bob, idempotency_key=ALICES_KEY)
    assert response.status_code == 202 and "Idempotent-Replayed" not in response
    assert response.json()["id"] != alices_jobs["semantic"]["id"]


@pytest.mark.parametrize("client_name", ["alice", "bob", "anonymous"])
def test_media_folders_are_not_served_or_listed(alices_jobs, request, client_name):
    client = request.getfixturevalue(client_name)
    job_id = alices_jobs["semantic"]["id"]
    paths = ["/media/", "/media/jobs/", f"/media/jobs/{job_id}/", f"/media/jobs/{job_id}/input.jpg"]
    paths += [f"/static/../media/jobs/{job_id}/input.jpg", "/api/v1/jobs/../../media/jobs/"]
    paths += [f"/api/v1/jobs/{job_id}/files/", f"/api/v1/jobs/{job_id}/files/../"]
    for path in paths:
        response = client.get(path)
        assert_error(response, 404, "not_found")
        assert b"input.jpg" not in response.content and b"mask.png" not in response.content


def test_a_signed_url_still_serves_the_file_it_names(alices_jobs, anonymous):
    """The positive control for the forgeries: a real signature on its own path works."""
    mask = alices_jobs["semantic"]["result"]["files"]["mask"]
    response = anonymous.get(mask[len(SERVER) :])
    assert response.status_code == 200
    assert Image.open(io.BytesIO(b"".join(response.streaming_content))).size == (96, 72)
