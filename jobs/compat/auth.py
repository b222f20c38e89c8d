"""Who a compatible client is: a token as everywhere, or, when the operator allows it,
one dedicated anonymous user for clients that cannot send a token."""

from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.authentication import BaseAuthentication, TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from jobs.api.throttling import ANONYMOUS


class CompatAnonymousAuthentication(BaseAuthentication):
    """With COMPAT_ALLOW_ANONYMOUS, a request with no Authorization header runs as the
    `compat-anonymous` user. A wrong token is still refused (TokenAuthentication first)."""

    def authenticate(self, request):
        if not settings.COMPAT_ALLOW_ANONYMOUS or request.META.get("HTTP_AUTHORIZATION"):
            return None
        user, created = get_user_model().objects.get_or_create(username=settings.COMPAT_ANONYMOUS_USERNAME)
        if created:
            user.set_unusable_password()  # never a way into the admin
            user.save(update_fields=["password"])
        if not user.is_active:  # an operator can shut anonymous access off in the admin
            raise AuthenticationFailed("Anonymous access is disabled on this server.")
        return user, ANONYMOUS  # marks the request for per-address throttling


AUTHENTICATION_CLASSES = [TokenAuthentication, CompatAnonymousAuthentication]
