"""Absolute URLs, with or without a request to take the host from."""

from django.conf import settings


def absolute_url(request, path):
    """The request's own scheme and host when there is one (API answers), else
    PUBLIC_BASE_URL (webhook payloads, built in a worker)."""
    if request is not None:
        return request.build_absolute_uri(path)
    return settings.PUBLIC_BASE_URL + path
