"""Request rates: per token, and per address for the anonymous compatible clients.

Those clients all run as the one `compat-anonymous` user (jobs/compat/auth.py), so a
per-user rate would make every one of them share a single bucket: they are counted per
address instead.
"""

import logging

from redis.exceptions import RedisError
from rest_framework.throttling import AnonRateThrottle, BaseThrottle, UserRateThrottle

log = logging.getLogger(__name__)

# What CompatAnonymousAuthentication puts in request.auth.
ANONYMOUS = "compat-anonymous"


class SlidingWindowCounter:
    """Count requests per window of the rate's duration, instead of DRF's list of every
    request's time.

    DRF keeps that list in the cache and pickles it on every request, so a request costs
    time in proportion to the rate: at 1000 requests a second the list soon holds tens of
    thousands of entries and each request waits on it. Here a request costs two cache reads
    and an increment. The count of the current window is added to the previous window's,
    weighted by how much of it is still within the last `duration` seconds: a close
    estimate of a true sliding window that never lets a window boundary double the burst.
    """

    def allow_request(self, request, view):
        if self.rate is None or (key := self.get_cache_key(request, view)) is None:
            return True
        try:
            return self._count(key)
        except RedisError as exc:
            # The counts live in Redis (CACHES). Until it is back, serve without limits rather
            # than refuse the status reads too (submits need Redis and get 503 anyway).
            log.warning("request rates not counted, the cache is unreachable: %s", exc)
            return True

    def _count(self, key):
        window, into = divmod(self.timer(), self.duration)
        current, previous = f"{key}:{int(window)}", f"{key}:{int(window) - 1}"
        counts = self.cache.get_many([current, previous])
        now, before = counts.get(current, 0), counts.get(previous, 0)
        if before * (1 - into / self.duration) + now >= self.num_requests:
            self.retry_after = self._until_room(now, before, into)
            return False
        if not self.cache.add(current, 1, timeout=2 * self.duration):
            try:
                self.cache.incr(current)
            except ValueError:  # evicted since the add (the local cache culls when full)
                self.cache.set(current, 1, timeout=2 * self.duration)
        return True

    def _until_room(self, now, before, into):
        """Seconds until the previous window's share has slid out far enough for one more."""
        if now >= self.num_requests:  # the current window alone is full: until it ends
            return self.duration - into
        # Room comes once `before` weighs num_requests - now: when this much of the
        # previous window has slid out (integers first, so that 40.0 does not come out 40.0000001).
        slid_out = self.duration * (before - (self.num_requests - now)) / before
        return max(1.0, slid_out - into)

    def wait(self):
        return self.retry_after


def anonymous_address(request):
    """The client's address for a request running as the anonymous compatible user, else
    "": REMOTE_ADDR, or the one TRUSTED_PROXIES (REST_FRAMEWORK's NUM_PROXIES) vouch for,
    never a header the client wrote itself."""
    return BaseThrottle().get_ident(request) if request.auth == ANONYMOUS else ""


class TokenRateThrottle(SlidingWindowCounter, UserRateThrottle):
    """Per user, for requests that came with their own token."""

    def get_cache_key(self, request, view):
        if request.auth == ANONYMOUS:
            return None
        return super().get_cache_key(request, view)


class AddressRateThrottle(SlidingWindowCounter, AnonRateThrottle):
    """Per address, for requests with no token (the anonymous compatible clients)."""

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated and request.auth != ANONYMOUS:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
