"""Fixtures for tests of the whole service (fault injection, `make run`): a private
database cluster, made once, and a fresh database and Redis for each test."""

import itertools
import os
import shutil
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from PIL import Image

from tests.conftest import eval_photo, image_bytes
from tests.processes import REPO
from tests.stack.servers import PrivatePostgres, PrivateRedis
from tests.stack.stack import Stack

TEMPLATE = "segment_stack_template"
_databases = itertools.count()

# Every user the tests need, with a token, made once in the template database.
MAKE_USERS = """
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
for name in ("alice", "bob"):
    print("token", name, Token.objects.create(user=User.objects.create_user(name)).key)
"""


def base_env(database_url):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST"))}
    env.update(
        DJANGO_SETTINGS_MODULE="segsite.settings",
        DATABASE_URL=database_url,
        SEGMENT_MODELS_DIR=str(settings.SEGMENT_MODELS_DIR),
        SECRET_KEY=settings.SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        # Production's persistent connections: they are what a database restart breaks.
        DB_CONN_MAX_AGE="60",
    )
    return env


def manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="session")
def postgres():
    server = PrivatePostgres().initialise()
    server.execute(f"CREATE DATABASE {TEMPLATE}")
    env = base_env(server.url(TEMPLATE))
    manage(env, "migrate", "--noinput")
    made = manage(env, "shell", "-c", MAKE_USERS).splitlines()
    server.tokens = dict(line.split()[1:] for line in made if line.startswith("token "))
    yield server
    server.remove()


@pytest.fixture
def redis_server():
    server = PrivateRedis().start()
    yield server
    server.stop()


@pytest.fixture
def stack(postgres, redis_server, tmp_path):
    """The service on a fresh database and an empty Redis; the test starts the parts it needs."""
    database = f"stack_{next(_databases)}"
    postgres.execute(f"CREATE DATABASE {database} TEMPLATE {TEMPLATE}")
    env = base_env(postgres.url(database))
    env.update(
        CELERY_BROKER_URL=redis_server.url,
        REDIS_URL=redis_server.url,
        MEDIA_ROOT=str(tmp_path / "media"),
        # The operator's knobs, turned for a test that must finish in minutes: the reaper
        # looks every 2 s, a queued job's message is presumed lost after a minute.
        REAP_INTERVAL="2",
        JOB_REQUEUE_AFTER="60",
        MAX_QUEUED_JOBS_PER_USER="1000",
    )
    running = Stack(env, tmp_path)
    running.tokens = postgres.tokens
    yield running
    running.stop()


@pytest.fixture(scope="session")
def photo():
    """A real photo (the cat), small: the fault tests are about jobs, not pixels."""
    image = Image.open(eval_photo("photos/chelsea.jpg"))
    image.thumbnail((320, 320))
    return image_bytes(image, "JPEG", quality=90)


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def rabbit_stack(stack):
    if not shutil.which("rabbitmqctl"):
        pytest.skip("RabbitMQ is not installed on this machine (rabbitmqctl not found)")
    vhost = f"segment-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    stack.env["CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    yield stack
    stack.stop()  # before the vhost goes, or the workers would log reconnection errors
    rabbitmqctl("delete_vhost", vhost)
