"""Test settings: the real settings module, fed test values through the environment.

The suite runs on PostgreSQL and Redis (CI starts both); override with the same
variables the service reads. Worker processes started by the tests get these values
passed explicitly (tests/e2e/conftest.py), so they run the production settings module.
"""

import os
import tempfile
import uuid

from tests import run_slot

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
# A Redis database and a PostgreSQL test database of this run's own (tests/run_slot.py),
# away from a `make run` on the same Redis (database 0) and from another run. Processes the
# tests start inherit the slot through the environment.
if "SEGMENT_TEST_SLOT" not in os.environ:
    os.environ["SEGMENT_TEST_SLOT"] = str(run_slot.claim())
SLOT = int(os.environ["SEGMENT_TEST_SLOT"])
os.environ.setdefault("CELERY_BROKER_URL", f"redis://127.0.0.1:6379/{SLOT}")
# The cache (request-rate counts) on that Redis under a prefix of this run's own as well,
# which the tests clear key by key (tests/conftest.py).
os.environ.setdefault("CACHE_KEY_PREFIX", f"test-{uuid.uuid4().hex[:12]}")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="segment-test-media-"))
# The live server answers each request in a new thread; persistent connections would
# outlive those threads and block dropping the test database.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")

from segsite.settings import *  # noqa: E402,F403

DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_segment_{SLOT}"  # noqa: F405

# Faster hashing for the users the fixtures create.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
