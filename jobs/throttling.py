"""Request rates: per token, and per address for the anonymous compatible clients.

Those clients all run as the one `compat-anonymous` user (jobs/compat/auth.py), so a
per-user rate would make every one of them share a single bucket: they are counted per
address instead.
"""

from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

# What CompatAnonymousAuthentication puts in request.auth.
ANONYMOUS = "compat-anonymous"


class TokenRateThrottle(UserRateThrottle):
    """Per user, for requests that came with their own token."""

    def get_cache_key(self, request, view):
        if request.auth == ANONYMOUS:
            return None
        return super().get_cache_key(request, view)


class AddressRateThrottle(AnonRateThrottle):
    """Per address, for requests with no token (the anonymous compatible clients)."""

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated and request.auth != ANONYMOUS:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
