"""Status reads from Redis: a job's JSON kept for STATUS_CACHE_SECONDS after a full read.

Clients poll. A full read (token lookup, job query, serializer) costs about 4 ms of a web
process's CPU, which caps two cores near 400 reads a second; the cached answer skips all of
it. ReadCacheMiddleware answers `GET /api/v1/jobs/<id>/` from here when everything checks
out, and otherwise lets the request go the normal way, which then refreshes the entry:

- The token's user is looked up under a hash of the token; a deleted token or a saved
  user (deactivated, say) gets a tombstone at once and again after its commit, which no
  read in flight can overwrite (jobs/signals.py).
- Every write to a job bumps the job's generation counter, straight away and again after
  its commit; an entry is served only while the generation it was read at is current. A
  read that raced a write therefore stores an entry that is never served.
- Jobs with a webhook are never cached: their deliveries change without touching the job.
- Absolute URLs depend on the host asked, so the entry records the base it was built for.
- The request-rate limit still applies (a throttled request goes the normal way: 429).

Redis errors make the cache miss, never the request fail: its client gives up after a
quarter second, and after an error the cache leaves Redis alone for a few seconds, so
that even a hung Redis leaves reads costing about what they did without the cache.
"""

import json
import logging
import re
import time
from types import SimpleNamespace

import redis
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import transaction
from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer

from core import redis_keys
from core.redis_clients import quick_redis_client
from jobs.api.throttling import TokenRateThrottle

log = logging.getLogger(__name__)

DETAIL_PATH = re.compile(
    r"^/api/v1/jobs/(?P<pk>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/$"
)
TOKEN_HEADER = re.compile(r"^Token ([0-9a-f]{40})$")
# What the normal path renders as it is; any other Accept goes there (406, or indented JSON).
PLAIN_ACCEPT = ("", "*/*", "application/json")
# A generation must outlive every entry read at it, or an expired counter would read as 0
# again and make an old entry current: the longest STATUS_CACHE_SECONDS, and a margin.
GENERATION_SECONDS = 300 + 60
# A revoked token's tombstone outlives any full read that authenticated it just before.
TOMBSTONE_SECONDS = 60
REVOKED = b"-"
# After a Redis error the cache is left alone for this long: a hung Redis then costs one
# quarter-second timeout every few seconds, not one per read and per job write.
PAUSE_AFTER_ERROR = 5.0
_paused_until = 0.0


def _enabled():
    return settings.STATUS_CACHE_SECONDS > 0


def _redis(operation):
    """operation(client), or None on a Redis error and for PAUSE_AFTER_ERROR after one.

    A write skipped meanwhile can leave an entry served for up to STATUS_CACHE_SECONDS.
    """
    global _paused_until
    if time.monotonic() < _paused_until:
        return None
    try:
        return operation(quick_redis_client(settings.REDIS_URL))
    except redis.RedisError as exc:
        _paused_until = time.monotonic() + PAUSE_AFTER_ERROR
        log.warning("status cache: Redis failed (%s); leaving it alone for %s s", exc, PAUSE_AFTER_ERROR)
        return None


_entry_key = redis_keys.status
_generation_key = redis_keys.status_generation
_token_key = redis_keys.status_token


def generation(job_id):
    """The job's current generation: take it before reading the job to cache."""
    if not _enabled():
        return None
    return _redis(lambda client: int(client.get(_generation_key(job_id)) or 0))


def remember(request, job, body, seen):
    """Keep the full read's `body` of `job`, read at generation `seen`."""
    token = getattr(request.auth, "key", None)  # a Token, not the compatible API's anonymous user
    if seen is None or job.webhook_url or token is None:
        return
    entry = {
        "owner": job.owner_id,
        "base": request.build_absolute_uri("/"),
        "generation": seen,
        "body": JSONRenderer().render(body).decode(),
    }
    ttl = settings.STATUS_CACHE_SECONDS

    def store(client):
        with client.pipeline(transaction=False) as pipe:
            pipe.set(_entry_key(job.pk), json.dumps(entry), ex=ttl)
            # Never over a revoked token's tombstone (nx): this read may have authenticated
            # it just before it was revoked.
            pipe.set(_token_key(token), job.owner_id, ex=ttl, nx=True)
            pipe.execute()

    _redis(store)


def forget(job_id):
    """A write to the job: entries read before it are stale. Call with the write, inside
    its transaction if it has one: bumped at once (for readers of the old row meanwhile)
    and again after the commit (for a reader that read the old row before it). Bumped
    whatever this process's STATUS_CACHE_SECONDS: the readers may cache with another."""
    _bump(job_id)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _bump(job_id), robust=True)


def _bump(job_id):
    def bump(client):
        with client.pipeline(transaction=False) as pipe:
            pipe.incr(_generation_key(job_id))
            pipe.expire(_generation_key(job_id), GENERATION_SECONDS)
            pipe.execute()

    _redis(bump)


def forget_tokens(keys):
    """Tokens deleted, or their user changed: each gets a tombstone, at once and after the
    commit, so that no read in flight puts it back and its next request authenticates."""
    if not keys:
        return

    def bury(client):
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(_token_key(key), REVOKED, ex=TOMBSTONE_SECONDS)
            pipe.execute()

    _redis(bury)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _redis(bury), robust=True)


def cached_answer(request):
    """The cached JSON for this request, or None to let it go the normal way."""
    match = DETAIL_PATH.match(request.path_info)
    token = TOKEN_HEADER.match(request.META.get("HTTP_AUTHORIZATION", ""))
    if not (
        _enabled()
        and request.method == "GET"
        and match
        and token
        and not request.META.get("QUERY_STRING")
        and "HTTP_PREFER" not in request.META  # a long poll (Prefer: wait) waits in the view
        and request.META.get("HTTP_ACCEPT", "") in PLAIN_ACCEPT
    ):
        return None
    job_id = match["pk"]
    found = _redis(
        lambda client: client.mget(_token_key(token[1]), _entry_key(job_id), _generation_key(job_id))
    )
    if found is None:
        return None
    user_id, raw, current = found
    if raw is None or user_id is None or not user_id.isdigit():  # unknown, or a tombstone
        return None
    entry = json.loads(raw)
    if (
        entry["owner"] != int(user_id)
        or entry["generation"] != int(current or 0)
        or entry["base"] != request.build_absolute_uri("/")  # validates the Host header too
        or not _within_rate(int(user_id))
    ):
        return None
    return entry["body"]


def _within_rate(user_id):
    # Counted as every API request is; a refused one goes on to the normal path's 429.
    caller = SimpleNamespace(user=SimpleNamespace(pk=user_id, is_authenticated=True), auth=None)
    return TokenRateThrottle().allow_request(caller, None)


class ReadCacheMiddleware:
    """Answers cached status reads before sessions, CSRF, URL routing and DRF."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            body = cached_answer(request)
        except DisallowedHost:
            body = None  # the normal path answers 400
        if body is None:
            return self.get_response(request)
        response = HttpResponse(body, content_type="application/json")
        # What the normal path's DRF and middleware would add.
        response["Content-Length"] = str(len(response.content))
        response["Allow"] = "GET, DELETE, HEAD, OPTIONS"
        response["X-Frame-Options"] = "DENY"
        return response
