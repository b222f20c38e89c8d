"""The shared test world: alice and bob with API tokens, the shared eval photos, images."""

import io
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import trustme
from kombu.exceptions import OperationalError
from PIL import Image
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core import serving
from core.repository import local_specs
from jobs.lifecycle import services
from jobs.ops import health
from jobs.webhooks import addresses
from workers import registry

REPO = Path(__file__).resolve().parent.parent
EVAL = REPO.parent / "shared" / "eval"


# The datasets' class names, as the shipped model folders label them.
PASCAL_VOC = local_specs()["deeplabv3_mnv2_pascal"].labels
COCO_80 = local_specs()["yolov8n_seg_coco"].labels


def eval_photo(relative):
    """A real photo from ../shared/eval; skip (with the reason) where that folder is absent."""
    path = EVAL / relative
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared eval photos are not beside this checkout")
    return path


def image_bytes(array_or_image, fmt="PNG", **save_args):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def gradient(width=64, height=48):
    """A small RGB test image with structure (not one flat colour)."""
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    return np.stack(
        np.broadcast_arrays(x[None, :], y[:, None], np.full((height, width), 128, np.uint8)), axis=2
    )


def make_user_client(django_user_model, username):
    user = django_user_model.objects.create_user(username=username)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    client.user = user
    return client


# The figures the issues ask to see in CI's output: recorded by the tests that measure them,
# printed together at the end of the run (pytest hides a passing test's own prints).
_FIGURES = []


@pytest.fixture
def figure(request):
    """figure("100 jobs, worker SIGKILLed 3 times: 100 succeeded, 0 ran twice")."""

    def record(line):
        _FIGURES.append((request.node.nodeid, line))

    return record


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section("measured figures")
    for nodeid, line in _FIGURES:
        terminalreporter.write_line(f"{line}    [{nodeid.split('::')[-1]}]")


def clear_cache():
    """Delete this run's keys from the cache on Redis (cache.clear() would flush the whole
    database, another run's keys with it)."""
    from django.conf import settings
    from django.core.cache import cache

    client = cache._cache.get_client(write=True)
    prefix = settings.CACHES["default"]["KEY_PREFIX"]
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttle counts live in the cache: none may leak from one test into the next (every
    anonymous test client is the same address)."""
    from jobs.api import readcache

    clear_cache()
    readcache._paused_until = 0.0  # a test that took Redis away must not pause the next one
    serving.forget()  # each test sees the workers announced now, not a second ago
    health.forget_readiness()  # and /readyz evaluated afresh
    yield
    clear_cache()  # nothing of this run left in the shared Redis


def light_specs():
    """The models a light worker serves: every spec in the repository not marked optional."""
    return [spec for spec in local_specs().values() if not spec.weights.optional]


@pytest.fixture
def served_models():
    """A live worker's announcement of the light models, for tests of the API layer alone.

    The resolver accepts a model only while a live worker serves it; these tests need that
    answer, not inference, so they publish the heartbeat a light worker would. Returns the
    function that announces more (or other) specs under another worker name.
    """
    keys = []

    def announce(specs, worker="api-tests@localhost"):
        payload = [{"spec": spec.to_dict(), "sha256": spec.weights.sha256} for spec in specs]
        keys.append(serving.publish(worker, payload, pid=1))
        serving._redis().expire(keys[-1], 600)  # a worker renews it; a long test must not outlive it
        serving.forget()

    announce(light_specs())
    yield announce
    serving._redis().delete(*keys)
    serving.forget()


@pytest.fixture
def test_ca(monkeypatch, tmp_path):
    """A certificate authority that outgoing HTTPS (webhooks, image URLs) trusts for this
    test, in place of the system's: urllib3 loads OpenSSL's default trust store for each
    connection, and OpenSSL reads SSL_CERT_FILE when it does (an operator's private CA goes
    the same way)."""
    ca = trustme.CA()
    bundle = tmp_path / "test-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return ca


@pytest.fixture
def issued(test_ca, tmp_path):
    """issued(name): a PEM file with a key and a certificate for `name` from the test CA."""

    def issue(name):
        path = tmp_path / f"{name}.pem"
        test_ca.issue_cert(name).private_key_and_cert_chain_pem.write_to_path(str(path))
        return path

    return issue


@pytest.fixture
def checked_to_localhost(monkeypatch):
    """Every webhook and image URL passes its address check, resolved to 127.0.0.1 where
    the test servers listen; the URL's own host name is kept for SNI, the certificate check
    and the Host header.

    The checks are tested in tests/jobs/test_webhook_addresses.py. A TLS test needs a host
    name that a certificate can carry; taking the check as passed keeps it off DNS and off
    the allowlist's format.
    """

    # Every caller looks addresses.resolve up when it calls it (the submit check, through
    # resolve_webhook, as well as the transport and fetching): the fake applies to all,
    # and monkeypatch puts the real one back after the test.
    def resolve(url, *args, **kwargs):
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return addresses.Target(parts.scheme, parts.hostname, parts.port, parts.netloc, path, "127.0.0.1")

    monkeypatch.setattr(addresses, "resolve", resolve)


@pytest.fixture
def alice(db, django_user_model):
    return make_user_client(django_user_model, "alice")


@pytest.fixture
def bob(db, django_user_model):
    return make_user_client(django_user_model, "bob")


@pytest.fixture
def anonymous():
    return APIClient()


class SentTasks:
    def __init__(self):
        self.calls = []
        self.fail = False

    def send_task(self, name, args=None, task_id=None, queue=None, **kwargs):
        if self.fail:
            raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.calls.append({"name": name, "args": args, "task_id": task_id, "queue": queue, **kwargs})


@pytest.fixture
def sent(monkeypatch):
    recorder = SentTasks()
    monkeypatch.setattr(services, "current_app", recorder)
    return recorder


@pytest.fixture(scope="session")
def engines():
    """Every light engine, loaded once with the real weights that `make setup` installs.

    Never the heavy ones: importing pixellib would switch this process to graph mode.
    """
    registry.load_models(light_specs())  # raises, naming the file, where `make setup` was not run
    return registry


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A folder of tiny model folders built now (tests/fixtures/tiny_models.py): a matte as
    .onnx and as .tflite, and a three-class semantic .onnx. In a process of its own, so
    that TensorFlow stays out of this one."""
    folder = tmp_path_factory.mktemp("tiny_models")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(REPO)}
    written = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.tiny_models", str(folder)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert written.returncode == 0, f"tests.fixtures.tiny_models failed:\n{written.stderr[-4000:]}"
    return folder


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A private SeaweedFS S3 store for this test run (tests/fixtures/seaweedfs.py)."""
    from tests.fixtures.seaweedfs import SeaweedFS

    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def s3_media(settings, seaweedfs):
    """MEDIA_STORAGE=s3 on a bucket of its own, emptied and removed afterwards."""
    import uuid

    bucket = f"media-{uuid.uuid4().hex[:12]}"
    client = seaweedfs.client()
    client.create_bucket(Bucket=bucket)
    settings.MEDIA_STORAGE = "s3"
    settings.STORAGES = {**settings.STORAGES, "default": seaweedfs.storage_options(bucket)}
    yield client, bucket
    for item in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)
