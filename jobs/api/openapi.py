"""What the OpenAPI schema says about responses the serializers cannot describe by
themselves: the error shapes and each endpoint's error statuses.

Kept next to the code that raises them; tests/test_schema.py fuzzes every endpoint with
schemathesis and fails on any status or body the schema does not describe.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from core.specs import TASKS


class ErrorDetail(serializers.Serializer):
    code = serializers.CharField(help_text="stable and machine-readable, e.g. invalid_image")
    message = serializers.CharField(help_text="for humans")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="validation errors: every problem, per field",
    )
    job_id = serializers.UUIDField(required=False, help_text="the job to poll, when one was created")
    job_url = serializers.URLField(required=False, help_text="where to poll it (with a token)")


class Error(serializers.Serializer):
    error = ErrorDetail()


class MAXError(serializers.Serializer):
    status = serializers.ChoiceField(choices=["error"])
    message = serializers.CharField()
    code = serializers.CharField(help_text="our stable code (MAX had none)")
    errors = serializers.DictField(child=serializers.CharField(), required=False, help_text="per field")
    job_id = serializers.UUIDField(required=False)
    job_url = serializers.URLField(required=False)


def errors(statuses, shape=Error):
    """{status: described error response} for the statuses an endpoint may answer."""
    return {code: OpenApiResponse(shape, description=DESCRIPTIONS[code]) for code in statuses}


DESCRIPTIONS = {
    202: "The job did not finish in time (`not_finished`): poll `job_url`.",
    400: "Invalid request: a field, the image, the webhook URL or the wait value.",
    401: "No token, or a wrong one.",
    404: "No such resource, or another user's.",
    406: "The Accept header asks for something other than JSON.",
    409: "The job has already ended, or was canceled or deleted while the request waited.",
    413: "The upload or the image is too large.",
    415: "The image format or the request's content type is not supported.",
    429: "Too many requests, or too many jobs waiting (yours or the service's): retry after Retry-After.",
    502: "The job failed in its worker; `code` says why.",
    503: "The job queue is unavailable, no live worker serves the model (`model_unavailable`), or too "
    "many requests are waiting: retry after Retry-After.",
}

SUBMIT_ERRORS = (400, 401, 409, 413, 415, 503)
SYNC_ERRORS = (202, 400, 401, 409, 413, 415, 502, 503)


def _wait_parameters(answer):
    return [
        OpenApiParameter(
            "Prefer",
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            description=f"`wait=N` (RFC 7240), N from 0 to 60: {answer}",
        ),
        OpenApiParameter("wait", OpenApiTypes.INT, description="as `Prefer: wait=N`"),
    ]


WAIT_PARAMETERS = _wait_parameters("answer once the job has finished (201) or N seconds have passed (202)")
POLL_PARAMETERS = _wait_parameters(
    "answer once the job has finished or N seconds have passed, whichever comes first (long polling)"
)

SUBMIT_PARAMETERS = WAIT_PARAMETERS + [
    OpenApiParameter(
        "Idempotency-Key",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        description="up to 255 visible ASCII characters: a retried submit with the same key answers "
        "200 with the job it created instead of creating another",
    ),
]

FILE_TYPES = [
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/tiff",
    "image/heic",
    "image/avif",
]
FILE_RESPONSES = {
    **{(200, media): OpenApiTypes.BINARY for media in FILE_TYPES},
    302: OpenApiResponse(
        description="MEDIA_DOWNLOADS=redirect: to a presigned URL of the object in the bucket"
    ),
    **errors([401, 404]),
}
FILE_PARAMETERS = [
    OpenApiParameter(
        "token", OpenApiTypes.STR, description="the signature from a signed file URL; none for the owner"
    ),
]

MODEL_LIST = inline_serializer(
    "ModelList",
    {
        "models": inline_serializer(
            "Model",
            {
                "name": serializers.CharField(),
                "task": serializers.ChoiceField(choices=TASKS),
                "description": serializers.CharField(),
                "labels": serializers.ListField(child=serializers.CharField()),
                "input_size": serializers.ListField(child=serializers.IntegerField()),
                "runtime": serializers.CharField(help_text="litert, onnx or pixellib"),
                "licence": serializers.CharField(),
                "weights": inline_serializer(
                    "ModelWeights",
                    {
                        "file": serializers.CharField(),
                        "sha256": serializers.CharField(
                            allow_null=True, help_text="of the file a live worker loaded, else the spec's"
                        ),
                    },
                ),
                "available": serializers.BooleanField(help_text="whether a live worker serves it now"),
                "workers": serializers.ListField(child=serializers.CharField()),
                "default": serializers.BooleanField(),
            },
            many=True,
        ),
        "defaults": serializers.DictField(child=serializers.CharField()),
    },
)


def add_common_responses(result, generator, request, public):
    """drf-spectacular post-processing: what every operation may answer, described once.

    406 for an Accept header we cannot satisfy (JSON is all we render), the headers our
    answers carry (Location on a submit, Preference-Applied after a wait, Retry-After
    on a 503).
    """
    header = {"schema": {"type": "string"}}
    for path, operations in result["paths"].items():
        shape = "MAXError" if path.startswith("/model/") else "Error"
        for method, operation in operations.items():
            responses = operation["responses"]
            if "200" not in responses or "application/json" in responses["200"].get("content", {}):
                responses.setdefault(
                    "406",
                    {
                        "description": DESCRIPTIONS[406],
                        "content": {
                            "application/json": {"schema": {"$ref": f"#/components/schemas/{shape}"}}
                        },
                    },
                )
            if path != "/api/v1/jobs/{id}/files/{name}":  # throttled like every API view
                responses.setdefault(
                    "429",
                    {
                        "description": DESCRIPTIONS[429],
                        "content": {
                            "application/json": {"schema": {"$ref": f"#/components/schemas/{shape}"}}
                        },
                    },
                )
            for status in ("429", "503"):
                if status in responses:
                    responses[status]["headers"] = {"Retry-After": {**header, "description": "seconds"}}
            if path == "/api/v1/jobs/" and method == "post":
                responses["200"]["headers"] = {
                    "Location": {**header, "required": True, "description": "the job's URL"},
                    "Idempotent-Replayed": {**header, "required": True, "description": "true"},
                }
                for status in ("201", "202"):
                    responses[status]["headers"] = {
                        "Location": {**header, "required": True, "description": "the job's URL"},
                        "Preference-Applied": {
                            **header,
                            "description": "wait=N, when Prefer: wait was honoured",
                        },
                    }
    return result
