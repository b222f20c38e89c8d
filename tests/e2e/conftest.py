"""End-to-end fixtures: real Celery worker processes and an HTTP client for the live server.

Workers run the production settings module (segsite.settings) against the test database,
the test Redis database and the test media folder, with the real weights.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token

from tests import run_slot
from tests.processes import REPO, WorkerProcess

TERMINAL = {"succeeded", "failed", "canceled"}


def _service_env():
    """The environment of a process we start: production settings, the test services."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "segsite.settings",
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "SEGMENT_MODELS_DIR": str(settings.SEGMENT_MODELS_DIR),
        "SECRET_KEY": settings.SECRET_KEY,
        "PYTHONUNBUFFERED": "1",
    }


def _test_database_url():
    db = connection.settings_dict
    assert db["ENGINE"].endswith("postgresql"), "the end-to-end tests need PostgreSQL"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="session")
def clean_broker():
    """Drop messages an earlier, interrupted run left in the test Redis database."""
    run_slot.empty(redis.Redis.from_url(settings.CELERY_BROKER_URL))


# Per module: a worker one module leaves running would otherwise serve the next one's jobs
# (a live heavy worker makes the heavy models the defaults).
@pytest.fixture(scope="module")
def start_worker(django_db_setup, django_db_blocker, clean_broker, tmp_path_factory):
    started = []

    def start(name, queues="light", env=None, expect_ready=True, timeout=120, pool_args=()):
        log_path = tmp_path_factory.mktemp("workers") / f"{name}.log"
        worker = WorkerProcess(name, log_path, {**_service_env(), **(env or {})}, queues, pool_args)
        started.append(worker)
        return worker.start(timeout=timeout, expect_ready=expect_ready)

    yield start
    for worker in started:
        worker.stop()


class Client:
    """An API client speaking HTTP to the live server, as a mobile app would."""

    def __init__(self, base_url, token):
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def submit(self, data, filename="photo.jpg", headers=None, params=None, **fields):
        return self.session.post(
            f"{self.base_url}/api/v1/jobs/",
            files={"image": (filename, data)},
            data=fields,
            headers=headers,
            params=params,
            timeout=90,
        )

    def get(self, url):
        return self.session.get(url if "://" in url else self.base_url + url, timeout=30)

    def wait(self, url, timeout=60):
        """The job once it has ended, by long polling (`Prefer: wait`) as a phone would: a
        tight loop of reads would run into the per-token rate limit on a slow machine."""
        deadline = time.monotonic() + timeout
        job = {"status": "not read yet"}
        while time.monotonic() < deadline:
            left = max(1, min(10, int(deadline - time.monotonic())))
            url = url if "://" in url else self.base_url + url
            response = self.session.get(url, headers={"Prefer": f"wait={left}"}, timeout=left + 30)
            assert response.status_code == 200, response.text
            job = response.json()
            if job["status"] in TERMINAL:
                return job
            time.sleep(0.05)  # where the wait was not honoured
        raise AssertionError(f"job still {job['status']} after {timeout}s: {job}")


@pytest.fixture
def client(live_server, django_user_model):
    user = django_user_model.objects.create_user(username="mobile-app")
    return Client(live_server.url, Token.objects.create(user=user).key)


class ReceiverProcess:
    """`manage.py webhook_receiver`, as a developer runs it, on a free local port."""

    def __init__(self, secret, out_path, fail=0, delay=0.0, port=0):
        command = [sys.executable, "manage.py", "webhook_receiver", "--port", str(port), "--secret", secret]
        command += ["--fail", str(fail), "--delay", str(delay)]
        self.out_path = out_path
        self.err_path = Path(f"{out_path}.stderr")
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=_service_env(),
            stdout=open(out_path, "wb"),
            stderr=open(self.err_path, "wb"),
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not (match := re.search(r"http://127.0.0.1:(\d+)/", self.err_path.read_text())):
            assert self.process.poll() is None and time.monotonic() < deadline, self.err_path.read_text()
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{match.group(1)}/hooks/segment"

    def deliveries(self):
        """Every verified delivery so far: {webhook_id, timestamp, answered, payload}."""
        text = Path(self.out_path).read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_for(self, count, timeout=30, answered=200):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [d for d in self.deliveries() if d["answered"] == answered]
            if len(got) >= count:
                return got
            time.sleep(0.1)
        raise AssertionError(f"{len(got)} of {count} deliveries after {timeout}s: {self.deliveries()}")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)


@pytest.fixture
def start_receiver(tmp_path):
    started = []

    def start(secret, **options):
        started.append(ReceiverProcess(secret, tmp_path / f"receiver-{len(started)}.jsonl", **options))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()
