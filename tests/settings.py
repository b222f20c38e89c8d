"""Test settings: the real settings module, fed test values through the environment.

The suite runs on PostgreSQL and Redis (CI starts both); override with the same
variables the service reads. Worker processes started by the tests get these values
passed explicitly (tests/e2e/conftest.py), so they run the production settings module.
"""

import os
import tempfile
import uuid

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
# Database 15 keeps test messages away from a `make run` on the same Redis (database 0).
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
# The cache (request-rate counts) on that Redis under a prefix of this run's own, which the
# tests clear key by key (tests/conftest.py): never a FLUSHDB of a database others use.
os.environ.setdefault("CACHE_KEY_PREFIX", f"test-{uuid.uuid4().hex[:12]}")
os.environ.setdefault("MEDIA_ROOT", tempfile.mkdtemp(prefix="segment-test-media-"))
# The live server answers each request in a new thread; persistent connections would
# outlive those threads and block dropping the test database.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")

from segsite.settings import *  # noqa: E402,F403

# Faster hashing for the users the fixtures create.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
