"""A slot of this test run's own: a Redis database and a PostgreSQL test database.

Two runs on one machine (a developer's and a helper's, or CI's) would otherwise share Redis
database 15 and the database `test_test`, and empty each other's queues. A run claims the
first Redis database (1 to 15) that is empty or was a test run's, with a lease that only one
run can set; the slot's number also names its PostgreSQL test database. Database 0 is left
to `make run`. What a run does to its own Redis database (empty it, lose its messages on
purpose) touches nobody else's.
"""

import atexit
import os
import socket

import redis

MARKER = "segment-test:slot"  # stays: this database belongs to the suite
LEASE = "segment-test:lease"  # held while a run uses it; expires if the run is killed
LEASE_SECONDS = 4 * 3600
SLOTS = range(1, 16)


def claim(server="redis://127.0.0.1:6379"):
    """The number of the Redis database this run now holds; released when the run exits."""
    owner = f"{socket.gethostname()}:{os.getpid()}"
    for slot in SLOTS:
        client = redis.Redis.from_url(f"{server}/{slot}")
        if client.dbsize() and not client.exists(MARKER):
            continue  # someone else's data
        if client.set(LEASE, owner, nx=True, ex=LEASE_SECONDS):
            client.set(MARKER, "1")
            atexit.register(_release, client, owner)
            return slot
    raise RuntimeError(f"every Redis database {SLOTS.start}-{SLOTS.stop - 1} is held by another test run")


def empty(client):
    """Delete every key of this run's database but the claim: a FLUSHDB would drop the lease
    and let another run take the database mid-run."""
    for key in client.scan_iter(count=1000):
        if key.decode() not in (MARKER, LEASE):
            client.delete(key)


def _release(client, owner):
    if client.get(LEASE) == owner.encode():
        client.delete(LEASE)
