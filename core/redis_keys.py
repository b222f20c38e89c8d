"""Every Redis key and channel the service uses, in one place, so none collide or drift.

Web processes and workers share them: a key written on one side and read on the other is
spelt here once.
"""

import hashlib

PREFIX = "segment:"

# Serving: one key per live worker pool process, holding the models it has loaded.
SERVING = PREFIX + "ready:"


# Jobs: a finished job is announced on its channel (for `Prefer: wait` requests).
def job_finished(job_id):
    return f"{PREFIX}job-finished:{job_id}"


# Status-read cache (jobs/api/readcache.py): a job's JSON, its generation, a token's owner.
def status(job_id):
    return f"{PREFIX}status:{job_id}"


def status_generation(job_id):
    return f"{PREFIX}status-gen:{job_id}"


def status_token(token_key):
    # Hashed: a dump of Redis must not hand out working API tokens.
    return f"{PREFIX}status-token:" + hashlib.sha256(token_key.encode()).hexdigest()


# Metrics (jobs/ops/metrics.py): hashes of counters summed over every process.
METRICS_JOBS = PREFIX + "metrics:jobs"  # "created|model" or "<status>|model" -> count
METRICS_SECONDS = PREFIX + "metrics:seconds"  # "<histogram>|model|<le>" -> count, "...|sum" -> seconds
METRICS_WEBHOOKS = PREFIX + "metrics:webhooks"  # outcome -> count

# In the broker's own database: missing means the broker lost its messages (jobs/ops/broker.py).
BROKER_MARKER = PREFIX + "broker-marker"
