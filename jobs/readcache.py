"""Status reads from Redis: a job's JSON kept for STATUS_CACHE_SECONDS after a full read.

Clients poll. A full read (token lookup, job query, serializer) costs about 4 ms of a web
process's CPU, which caps two cores near 400 reads a second; the cached answer skips all of
it. ReadCacheMiddleware answers `GET /api/v1/jobs/<id>/` from here when everything checks
out, and otherwise lets the request go the normal way, which then refreshes the entry:

- The token's user is looked up under a hash of the token; a deleted token or a saved
  user (deactivated, say) drops its entries at once (jobs/signals.py).
- Every write to a job bumps the job's generation counter, straight away and again after
  its commit; an entry is served only while the generation it was read at is current. A
  read that raced a write therefore stores an entry that is never served.
- Jobs with a webhook are never cached: their deliveries change without touching the job.
- Absolute URLs depend on the host asked, so the entry records the base it was built for.
- The request-rate limit still applies (a throttled request goes the normal way: 429).

Redis errors make the cache miss, never the request fail: reads then cost what they did.
"""

import hashlib
import json
import logging
import re
from types import SimpleNamespace

import redis
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import transaction
from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer

from segsite.redis_clients import redis_client

from .throttling import TokenRateThrottle

log = logging.getLogger(__name__)

DETAIL_PATH = re.compile(
    r"^/api/v1/jobs/(?P<pk>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/$"
)
TOKEN_HEADER = re.compile(r"^Token ([0-9a-f]{40})$")
# A generation must outlive every entry read at it, or an expired counter would read as 0
# again and make an old entry current.
GENERATION_MARGIN = 60


def _enabled():
    return settings.STATUS_CACHE_SECONDS > 0


def _client():
    return redis_client(settings.REDIS_URL)


def _entry_key(job_id):
    return f"segment:status:{job_id}"


def _generation_key(job_id):
    return f"segment:status-gen:{job_id}"


def _token_key(key):
    return "segment:status-token:" + hashlib.sha256(key.encode()).hexdigest()


def generation(job_id):
    """The job's current generation: take it before reading the job to cache."""
    if not _enabled():
        return None
    try:
        return int(_client().get(_generation_key(job_id)) or 0)
    except redis.RedisError:
        return None


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
    try:
        with _client().pipeline(transaction=False) as pipe:
            pipe.set(_entry_key(job.pk), json.dumps(entry), ex=ttl)
            pipe.set(_token_key(token), job.owner_id, ex=ttl)
            pipe.execute()
    except redis.RedisError:
        pass


def forget(job_id):
    """A write to the job: entries read before it are stale. Call with the write, inside
    its transaction if it has one: bumped at once (for readers of the old row meanwhile)
    and again after the commit (for a reader that read the old row before it)."""
    _bump(job_id)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _bump(job_id), robust=True)


def _bump(job_id):
    if not _enabled():
        return
    try:
        with _client().pipeline(transaction=False) as pipe:
            pipe.incr(_generation_key(job_id))
            pipe.expire(_generation_key(job_id), settings.STATUS_CACHE_SECONDS + GENERATION_MARGIN)
            pipe.execute()
    except redis.RedisError as exc:  # an entry may then be served until it expires
        log.warning("could not invalidate the cached status of job %s: %s", job_id, exc)


def forget_tokens(keys):
    """Tokens deleted, or their user changed: their next request authenticates again."""
    if not keys or not _enabled():
        return
    try:
        _client().delete(*(_token_key(key) for key in keys))
    except redis.RedisError as exc:
        log.warning("could not drop cached tokens: %s", exc)


def cached_answer(request):
    """The cached JSON for this request, or None to let it go the normal way."""
    match = DETAIL_PATH.match(request.path_info)
    token = TOKEN_HEADER.match(request.META.get("HTTP_AUTHORIZATION", ""))
    if not (
        _enabled() and request.method == "GET" and match and token and not request.META.get("QUERY_STRING")
    ):
        return None
    job_id = match["pk"]
    try:
        user_id, raw, current = _client().mget(
            _token_key(token[1]), _entry_key(job_id), _generation_key(job_id)
        )
    except redis.RedisError:
        return None
    if user_id is None or raw is None:
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
