"""Checks every way of uploading an image shares: size before parsing, then the image's header.

The REST API, the MAX-compatible and the PixelLib-compatible endpoints all refuse the same
images with the same codes, before anything is stored.
"""

from django.conf import settings
from rest_framework import serializers, status

from core.imageio import ImageError, inspect_image
from jobs.api.errors import APIError
from jobs.webhooks.addresses import WebhookURLError, check_syntax, refused_literal

# Multipart framing and the small form fields around the image.
MULTIPART_OVERHEAD = 64 * 1024


def body_limit():
    """The largest JSON body worth reading: an image at the limit in base64 (4/3 of its
    bytes), with iOS's escaped line break every 64 characters (4/64 more), and framing.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE is the same figure, for Django's own check."""
    return settings.MAX_UPLOAD_BYTES * 3 // 2 + MULTIPART_OVERHEAD


def check_content_length(request, limit=None):
    """413 before Django reads or spools a body that cannot hold an acceptable image."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise APIError("malformed_request", "Content-Length is not a number.") from None
    limit = limit or settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
    if length > limit:
        raise APIError(
            "upload_too_large",
            f"the request body is {length} bytes, more than any acceptable image needs ({limit}); "
            f"images may be up to {settings.MAX_UPLOAD_BYTES} bytes",
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )


def too_large(size):
    return APIError(
        "upload_too_large",
        f"the image is {size} bytes; the limit is {settings.MAX_UPLOAD_BYTES}",
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


def inspect_upload(upload):
    """The ImageInfo (format, displayed size) of an uploaded file, or the APIError that
    refuses it. Its pixels are decoded in full only by the worker (core/imageio.py)."""
    if upload.size > settings.MAX_UPLOAD_BYTES:
        raise too_large(upload.size)
    try:
        return inspect_image(upload, settings.MAX_IMAGE_PIXELS)
    except ImageError as exc:
        raise APIError(exc.code, exc.message, exc.status) from None


def queue_unavailable():
    return APIError(
        "queue_unavailable",
        "The job queue is unavailable; try again shortly.",
        status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "30"},
    )


def image_url_validator(url):
    """A field validator for an image URL a worker will fetch, the same on every endpoint.

    Only what needs no DNS lookup is checked here, in the web thread: the syntax, and the
    address when the host is one (http://169.254.169.254/ is refused at once). For a host
    name the address rules apply in the worker, at every redirect (workers/fetching.py).
    """
    if url:
        try:
            check_syntax(url)
        except WebhookURLError as exc:
            raise serializers.ValidationError(str(exc), code="invalid_image_url") from None
        kind = refused_literal(url, settings.IMAGE_URL_ALLOWED_HOSTS)
        if kind:
            raise serializers.ValidationError(
                f"the URL's host is a {kind} address; images are fetched from public addresses only "
                "(an operator may allow a host with IMAGE_URL_ALLOWED_HOSTS)",
                code="invalid_image_url",
            )
