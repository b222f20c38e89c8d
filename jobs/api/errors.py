"""One JSON error shape for every failure: {"error": {"code": ..., "message": ...}}.

`code` is stable and machine-readable; `message` is for humans; validation errors add
`fields` with every problem per field.
"""

import logging
import sys

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from jobs.lifecycle.resolver import ModelRefused
from jobs.lifecycle.storage import STORE_RETRY_AFTER, is_unreachable

log = logging.getLogger(__name__)


class APIError(exceptions.APIException):
    """An error with its own code and status, raised by views and services."""

    def __init__(self, code, message, status_code=status.HTTP_400_BAD_REQUEST, headers=None):
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.headers = headers or {}
        self.extra = {}  # more keys for the error object, e.g. the id of a job to poll


# Codes raised with ValidationError(..., code=X) that are worth surfacing as-is.
OWN_VALIDATION_CODES = {
    "unknown_model",
    "unknown_class",
    "model_task_mismatch",
    "model_unavailable",
    "invalid_webhook_url",
    "invalid_image_url",
}

_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
}


def store_unavailable():
    return APIError(
        "storage_unavailable",
        "The file store is unavailable; try again shortly.",
        status.HTTP_503_SERVICE_UNAVAILABLE,
        {"Retry-After": str(STORE_RETRY_AFTER)},
    )


def job_deleted():
    return APIError(
        "job_deleted", "The job was deleted while the request waited for it.", status.HTTP_409_CONFLICT
    )


def model_refused(refusal):
    """The resolver's refusal of a request's model, as every endpoint answers it."""
    headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else None
    error = APIError(refusal.code, refusal.message, refusal.status, headers)
    if refusal.status == status.HTTP_400_BAD_REQUEST:  # the request's own `model` is at fault
        error.extra = {"fields": {"model": [refusal.message]}}
    return error


def error_body(code, message, **extra):
    return {"error": {"code": code, "message": message, **extra}}


def exception_handler(exc, context):
    # DRF answers Django's Http404 and PermissionDenied itself; turn them into DRF's own
    # exceptions first so they get the same codes and shape as the rest.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = APIError(
            "upload_too_large", "The request body is too large.", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    elif isinstance(exc, ModelRefused):
        exc = model_refused(exc)
    elif isinstance(exc, SuspiciousOperation):  # too many form fields or files, a bad multipart
        exc = APIError("malformed_request", f"The request was refused: {exc}")
    elif is_unreachable(exc):
        log.warning("media store unreachable: %s", exc)
        exc = store_unavailable()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django logs it and handler500 answers in our shape
    if isinstance(exc, APIError):
        body = error_body(exc.error_code, str(exc.detail), **exc.extra)
        for name, value in exc.headers.items():
            response[name] = value
    elif isinstance(exc, exceptions.ValidationError):
        body = _validation_body(exc.detail)
    else:
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
        body = error_body(code, str(exc.detail))
    response.data = body
    return response


def _validation_body(detail):
    fields = _flatten(detail)
    first_field, first_errors = next(iter(fields.items()), ("request", ["invalid request"]))
    first = first_errors[0]
    code = first.code if getattr(first, "code", None) in OWN_VALIDATION_CODES else "invalid_request"
    prefix = "" if first_field in ("non_field_errors", "request") else f"{first_field}: "
    return error_body(code, prefix + str(first), fields={k: [str(e) for e in v] for k, v in fields.items()})


def _flatten(detail, prefix=""):
    """{"field": [ErrorDetail, ...]} from DRF's nested detail (lists, dicts, indices)."""
    if isinstance(detail, dict):
        out = {}
        for key, value in detail.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(detail, list) and detail and all(not isinstance(d, (dict, list)) for d in detail):
        return {prefix or "request": list(detail)}
    if isinstance(detail, list):
        out = {}
        for index, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}[{index}]"))
        return out
    return {prefix or "request": [detail]}


def json_404(request, exception=None):
    return JsonResponse(error_body("not_found", "No such resource."), status=404)


# How long a client should wait before retrying while the database is unreachable: a
# restart or a failover usually takes seconds.
DATABASE_RETRY_AFTER = 5


def json_500(request):
    # Django calls this from inside its `except` block, so the exception is at hand. A lost
    # database (restarting, failing over) is not our bug: say so, and when to retry.
    # Django has already logged it with its traceback. Fresh connections are made on the
    # next request (CONN_HEALTH_CHECKS), so the web process recovers by itself.
    if isinstance(sys.exc_info()[1], (OperationalError, InterfaceError)):
        return JsonResponse(
            error_body("database_unavailable", "The database is unavailable; try again shortly."),
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
        )
    return JsonResponse(
        error_body("internal_error", "The server hit an unexpected error; it has been logged."),
        status=500,
    )


def json_400(request, exception=None):
    return JsonResponse(error_body("bad_request", "The request could not be understood."), status=400)


def json_403(request, exception=None):
    return JsonResponse(error_body("permission_denied", "You may not do that."), status=403)
