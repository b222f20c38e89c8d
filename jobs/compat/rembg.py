"""rembg's HTTP server (`rembg s`): `POST /api/remove` with a multipart `file`, and
`GET /api/remove?url=...`, answering the cutout as image/png.

rembg's own parameters are read where its server reads them (form fields on a POST, the
query on a GET; `bgc` and `extras` from the query on both, and from the form too), its
model names all map to our cutout models (docs/rembg.md has the table), and errors have
FastAPI's shape: `{"detail": "..."}`, or 422 `{"detail": [{"type", "loc", "msg"}]}` for a
bad parameter. rembg has no authentication: here a client sends a token, or the operator
allows anonymous clients (COMPAT_ALLOW_ANONYMOUS), as on every compatible endpoint. Every
request is an ordinary cutout job (task=cutout) of the caller's (compat.sync).
"""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.views import APIView

from core.colours import parse_colour
from core.specs import CUTOUT, MATTE
from jobs.api.errors import exception_handler
from jobs.api.uploads import check_content_length, image_url_validator, inspect_upload
from jobs.api.views import AnyAccept
from jobs.compat.auth import AUTHENTICATION_CLASSES
from jobs.compat.removebg import INPUT_FAILURES, over_colour
from jobs.compat.sync import read_output, run_to_completion
from jobs.lifecycle.cutouts import CutoutOptionError, cutout_options
from jobs.lifecycle.resolver import ModelRefused, resolve
from jobs.webhooks.addresses import MAX_URL_LENGTH

# rembg's model (session) names. Each runs our default cutout model; those made for people
# keep only people. A name of one of our own models runs that model.
REMBG_MODELS = (
    "u2net",
    "u2netp",
    "u2net_human_seg",
    "u2net_cloth_seg",
    "u2net_custom",
    "silueta",
    "isnet-general-use",
    "isnet-anime",
    "sam",
    "birefnet-general",
    "birefnet-general-lite",
    "birefnet-portrait",
    "birefnet-dis",
    "birefnet-hrsod",
    "birefnet-cod",
    "birefnet-massive",
    "bria-rmbg",
    "ben_custom",
    "dis_custom",
)
PEOPLE_MODELS = ("u2net_human_seg", "birefnet-portrait")
DEFAULT_MODEL = "u2net"
# Read from the query string whatever the method, as rembg's server does.
QUERY_ONLY = ("bgc", "extras")
# DRF's error codes, as FastAPI (pydantic) types them.
ERROR_TYPES = {
    "required": "missing",
    "null": "missing",
    "max_value": "less_than_equal",
    "min_value": "greater_than_equal",
    "max_length": "string_too_long",
    "max_string_length": "int_parsing",
}


class RembgParameters(serializers.Serializer):
    model = serializers.CharField(
        required=False, default=DEFAULT_MODEL, max_length=64, help_text="a rembg model name, or one of ours"
    )
    a = serializers.BooleanField(required=False, default=False, help_text="alpha matting: ours always runs")
    af = serializers.IntegerField(required=False, default=240, min_value=0, max_value=255)
    ab = serializers.IntegerField(required=False, default=10, min_value=0, max_value=255)
    ae = serializers.IntegerField(required=False, default=10, min_value=0, help_text="erode size")
    om = serializers.BooleanField(required=False, default=False, help_text="only the mask (a grey PNG)")
    ppm = serializers.BooleanField(required=False, default=False, help_text="post-process the mask: accepted")


class RembgQuery(serializers.Serializer):
    bgc = serializers.CharField(
        required=False, max_length=64, help_text="background colour: r,g,b,a (0-255), hex or a colour name"
    )
    extras = serializers.CharField(required=False, max_length=10_000, help_text="accepted, ignored")

    def validate_bgc(self, text):
        return parse_bgc(text)


class RembgUpload(RembgParameters, RembgQuery):
    file = serializers.FileField(allow_empty_file=False, help_text="the image")


class RembgURL(RembgParameters, RembgQuery):
    url = serializers.CharField(
        max_length=MAX_URL_LENGTH,
        validators=[image_url_validator],
        help_text="the image's URL: fetched by the worker",
    )


def parse_bgc(text):
    """(r, g, b, a) of rembg's `bgc`: "r,g,b,a" or "r,g,b" (0-255), or #rrggbb / a name."""
    parts = text.split(",")
    if len(parts) in (3, 4):
        try:
            values = [int(part) for part in parts]
        except ValueError:
            values = []
        if values and all(0 <= value <= 255 for value in values):
            return (*values, 255)[:4]
    elif len(parts) == 1:
        try:
            return (*parse_colour(text), 255)
        except ValueError:
            pass
    raise serializers.ValidationError("a colour: r,g,b,a with each 0 to 255 (rembg's), #rrggbb or a name")


class RembgError(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False, help_text="our stable code (rembg has none)")
    job_id = serializers.UUIDField(required=False, help_text="the job to poll, when one was created")
    job_url = serializers.URLField(required=False)


class RembgValidationError(serializers.Serializer):
    detail = inline_serializer(
        "RembgValidationItem",
        {
            "type": serializers.CharField(),
            "loc": serializers.ListField(child=serializers.CharField()),
            "msg": serializers.CharField(),
        },
        many=True,
    )


DESCRIPTIONS = {
    202: "The job did not finish in time (`not_finished`): poll `job_url` with a token.",
    400: "The image could not be used, or its URL gave none.",
    401: "No token, or a wrong one (unless anonymous clients are allowed).",
    409: "The job was canceled or deleted while the request waited.",
    413: "The upload is too large.",
    415: "The image format or the body's content type is not supported.",
    422: "A bad or missing parameter, as FastAPI answers it.",
    429: "Too many requests or jobs waiting: retry after Retry-After.",
    502: "The job failed in its worker; `code` says why.",
    503: "The queue is unavailable, no worker serves the model, or too many requests wait: "
    "retry after Retry-After.",
}


def responses(statuses):
    described = {
        code: OpenApiResponse(
            RembgValidationError if code == 422 else RembgError, description=DESCRIPTIONS[code]
        )
        for code in statuses
    }
    return {(200, "image/png"): OpenApiTypes.BINARY, **described}


def rembg_exception_handler(exc, context):
    """Our errors as FastAPI shapes them: 422 with every bad parameter, else one detail."""
    request = context["request"]
    if isinstance(exc, exceptions.ValidationError):
        response = exception_handler(exc, context)
        response.status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
        response.data = {"detail": _validation_detail(exc.detail, request.method)}
        return response
    response = exception_handler(exc, context)
    if response is None:
        return None
    error = response.data["error"]
    if response.status_code == status.HTTP_502_BAD_GATEWAY and (
        error["code"] in INPUT_FAILURES or error["code"].startswith("image_url")
    ):
        response.status_code = status.HTTP_400_BAD_REQUEST  # the URL's fault, not the worker's
    body = {"detail": error["message"], "code": error["code"]}
    body.update({key: error[key] for key in ("job_id", "job_url") if key in error})
    response.data = body
    return response


def _validation_detail(detail, method):
    if not isinstance(detail, dict):
        detail = {"body": detail}
    items = []
    for name, problems in detail.items():
        where = "query" if method == "GET" or name in QUERY_ONLY else "body"
        for problem in problems if isinstance(problems, list) else [problems]:
            code = getattr(problem, "code", None)
            items.append(
                {"type": ERROR_TYPES.get(code, "value_error"), "loc": [where, name], "msg": str(problem)}
            )
    return items


def model_spec(name):
    """(spec, foreground) of a rembg `model`: ours by name, else the default cutout model."""
    if name not in REMBG_MODELS:
        try:
            return resolve(CUTOUT, name), ()
        except ModelRefused as refusal:
            if refusal.code != "unknown_model":
                raise
            message = (
                f"{name!r} is neither a rembg model ({', '.join(REMBG_MODELS)}) nor one of this server's"
            )
            raise exceptions.ValidationError({"model": [message + " (GET /api/v1/models/)"]}) from None
    spec = resolve(CUTOUT, None)
    people = name in PEOPLE_MODELS and spec.task != MATTE and "person" in spec.labels
    return spec, ("person",) if people else ()


class RembgView(APIView):
    """GET and POST /api/remove: rembg's server, run as cutout jobs."""

    authentication_classes = AUTHENTICATION_CLASSES
    parser_classes = [MultiPartParser, FormParser]
    content_negotiation_class = AnyAccept  # the PNG for any Accept

    def get_exception_handler(self):
        return rembg_exception_handler

    @extend_schema(
        tags=["rembg API"],
        summary="Remove the background of the image at a URL (rembg protocol)",
        parameters=[RembgURL],
        responses=responses([202, 400, 401, 409, 422, 429, 502, 503]),
    )
    def get(self, request):
        form = RembgURL(data=request.query_params.dict())
        form.is_valid(raise_exception=True)
        return self._remove(request, form.validated_data, None, image_url=form.validated_data["url"])

    @extend_schema(
        tags=["rembg API"],
        summary="Remove the background of an uploaded image (rembg protocol)",
        request={"multipart/form-data": RembgUpload},
        parameters=[RembgQuery],
        responses=responses([202, 400, 401, 409, 413, 415, 422, 429, 502, 503]),
    )
    def post(self, request):
        check_content_length(request)
        fields = request.query_params.dict()
        fields.update({name: request.data[name] for name in request.data})  # the form's win
        form = RembgUpload(data=fields)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        return self._remove(request, form.validated_data, upload)

    def _remove(self, request, data, upload, **image_url):
        spec, foreground = model_spec(data["model"])
        try:
            options = cutout_options(spec, foreground=foreground)
        except CutoutOptionError as exc:
            raise exceptions.ValidationError({"model": [exc.message]}) from None
        info = inspect_upload(upload) if upload is not None else None
        job = run_to_completion(request, upload, info, spec, options, task=CUTOUT, **image_url)
        if data["om"]:
            content = read_output(job, "matte")
        elif "bgc" in data:
            content = over_colour(read_output(job, "cutout"), data["bgc"])
        else:
            content = read_output(job, "cutout")
        return HttpResponse(content, content_type="image/png")
