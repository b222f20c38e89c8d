"""remove.bg's API: `POST /v1.0/removebg`, answered as remove.bg answers it.

A remove.bg client needs only a new base URL: the same fields (multipart, form or JSON),
the key in `X-Api-Key` (our API token), the image bytes back (or JSON with
`Accept: application/json`), the `X-Width`/`X-Height`/`X-Type`/`X-Foreground-*` headers,
and errors shaped `{"errors": [{"title", "code", "detailed"}]}` with remove.bg's statuses
(400 for a bad parameter or image, 403 for a missing or wrong key, 429 to slow down).
Every request is an ordinary cutout job (task=cutout) of the caller's, run through the
queue and waited for (compat.sync); docs/removebg.md says how each parameter maps.
"""

import base64
import io
import zipfile

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from PIL import Image
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import TokenAuthentication
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.colours import parse_colour
from core.specs import CUTOUT, SEMANTIC
from jobs.api.errors import APIError, exception_handler
from jobs.api.parsers import JSONParser
from jobs.api.uploads import (
    MULTIPART_OVERHEAD,
    body_limit,
    check_content_length,
    image_url_validator,
    inspect_upload,
)
from jobs.api.views import AnyAccept
from jobs.compat.auth import CompatAnonymousAuthentication
from jobs.compat.pixellib_api import decode_base64
from jobs.compat.sync import job_url, read_output, run_to_completion
from jobs.lifecycle.cutouts import CutoutOptionError, cutout_options
from jobs.lifecycle.resolver import resolve
from jobs.lifecycle.services import EXTENSIONS
from jobs.webhooks.addresses import MAX_URL_LENGTH

# size -> the most pixels of the result (None: the photo's own, or its crop's). remove.bg's
# default is preview; "full" is also called 4k, "preview" small and regular.
PREVIEW_PIXELS = 250_000
SIZES = {
    "preview": PREVIEW_PIXELS,
    "small": PREVIEW_PIXELS,
    "regular": PREVIEW_PIXELS,
    "medium": 1_500_000,
    "hd": 4_000_000,
    "full": None,
    "4k": None,
    "50MP": None,
    "auto": None,
}
DEFAULT_SIZE = "preview"

# type -> the labels kept, by their PASCAL VOC names (the default models') and COCO's (an
# instance model's); a model keeps those of them it has. None: every class but person;
# (): every class, the model's default foreground. docs/removebg.md has the table.
PERSON = ("person",)
ANIMALS = ("bird", "cat", "cow", "dog", "horse", "sheep", "elephant", "bear", "zebra", "giraffe")
CARS = ("car", "bus", "truck")
VEHICLES = (
    "aeroplane",
    "airplane",
    "bicycle",
    "boat",
    "bus",
    "car",
    "motorbike",
    "motorcycle",
    "train",
    "truck",
)
TYPES = {
    "auto": (),
    "person": PERSON,
    "animal": ANIMALS,
    "car": CARS,
    "transportation": VEHICLES,
    "product": None,
    "graphic": (),  # no model here knows graphics: as auto
}
# What X-Type says for type=auto, from the classes found: the first that matches.
DETECTED_TYPES = (("person", PERSON), ("animal", ANIMALS), ("car", CARS), ("transportation", VEHICLES))

# The defaults of the options we do not offer: a client may send them, nothing else.
DEFAULT_ROI = "0% 0% 100% 100%"
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "zip": "application/zip"}
JPEG_QUALITY = 90
PNG_LEVEL = 1  # as the worker's PNGs: a fraction of zlib's default time
# Job failures that are the request's fault (the URL, the image it gave): remove.bg's 400.
INPUT_FAILURES = ("invalid_image", "unsupported_format", "image_too_large")
# Our statuses remove.bg does not use, and what it answers instead.
STATUSES = {401: 403, 413: 400, 415: 400}
# Our fields that a remove.bg parameter fed, for the error's source.
PARAMETERS = {"background": "bg_color", "foreground": "type", "background_image": "bg_image_file"}


class ApiKeyAuthentication(TokenAuthentication):
    """remove.bg's `X-Api-Key: <key>`, where the key is the caller's API token. A request
    without the header goes on to `Authorization: Token` and the anonymous mode."""

    def authenticate(self, request):
        key = request.META.get("HTTP_X_API_KEY", "").strip()
        if not key:
            return None
        return self.authenticate_credentials(key)


AUTHENTICATION_CLASSES = [ApiKeyAuthentication, TokenAuthentication, CompatAnonymousAuthentication]


class RemoveBgFields(serializers.Serializer):
    """remove.bg's parameters that are not files (also what a JSON body may carry)."""

    image_file_b64 = serializers.CharField(
        required=False, allow_blank=True, help_text="the image, base64 (a data: URL prefix allowed)"
    )
    image_url = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_URL_LENGTH, help_text="fetched by the worker"
    )
    size = serializers.ChoiceField(
        choices=list(SIZES),
        required=False,
        allow_blank=True,
        help_text="the result's most pixels; preview when absent",
    )
    type = serializers.ChoiceField(choices=list(TYPES), required=False, allow_blank=True)
    type_level = serializers.ChoiceField(
        choices=["none", "1", "2", "latest"], required=False, allow_blank=True, help_text="accepted, ignored"
    )
    format = serializers.ChoiceField(choices=["auto", "png", "jpg", "zip"], required=False, allow_blank=True)
    roi = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text=f"only {DEFAULT_ROI!r}"
    )
    crop = serializers.BooleanField(required=False, default=False)
    crop_margin = serializers.CharField(required=False, allow_blank=True, max_length=16, help_text="px or %")
    scale = serializers.CharField(
        required=False, allow_blank=True, max_length=16, help_text="only 'original'"
    )
    position = serializers.CharField(
        required=False, allow_blank=True, max_length=16, help_text="only 'original' or 'center'"
    )
    channels = serializers.ChoiceField(choices=["rgba", "alpha"], required=False, allow_blank=True)
    add_shadow = serializers.BooleanField(required=False, default=False, help_text="only false")
    semitransparency = serializers.BooleanField(required=False, default=True, help_text="accepted, ignored")
    bg_color = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="hex (81d4fa, fff) or a colour name"
    )
    bg_image_url = serializers.CharField(
        required=False, allow_blank=True, max_length=MAX_URL_LENGTH, help_text="fetched by the worker"
    )

    def validate_roi(self, roi):
        if roi and roi.split() != DEFAULT_ROI.split():
            raise serializers.ValidationError(f"a region of interest is not supported: only {DEFAULT_ROI!r}")
        return roi

    def validate_scale(self, scale):
        if scale and scale != "original":
            raise serializers.ValidationError("scaling the subject is not supported: only 'original'")
        return scale

    def validate_position(self, position):
        if position and position not in ("original", "center"):
            raise serializers.ValidationError("positioning the subject is not supported: only 'original'")
        return position

    def validate_add_shadow(self, add_shadow):
        if add_shadow:
            raise serializers.ValidationError("shadows are not supported: add_shadow must be false")
        return add_shadow

    def validate_image_url(self, url):
        image_url_validator(url)
        return url

    def validate_bg_image_url(self, url):
        image_url_validator(url)
        return url


class RemoveBgRequest(RemoveBgFields):
    image_file = serializers.FileField(required=False, allow_empty_file=False, help_text="the image")
    bg_image_file = serializers.FileField(required=False, allow_empty_file=False, help_text="a background")


class RemoveBgErrorItem(serializers.Serializer):
    title = serializers.CharField(help_text="for humans")
    code = serializers.CharField(required=False, help_text="stable: auth_failed, unknown_foreground, or ours")
    detailed = serializers.CharField(required=False)
    source = inline_serializer("RemoveBgErrorSource", {"parameter": serializers.CharField()}, required=False)
    job_id = serializers.UUIDField(required=False, help_text="the job to poll, when one was created")
    job_url = serializers.URLField(required=False)


class RemoveBgError(serializers.Serializer):
    errors = RemoveBgErrorItem(many=True)


RESULT = inline_serializer(
    "RemoveBgResult",
    {
        "data": inline_serializer(
            "RemoveBgResultData",
            {
                "result_b64": serializers.CharField(help_text="the result file, base64"),
                "foreground_top": serializers.IntegerField(),
                "foreground_left": serializers.IntegerField(),
                "foreground_width": serializers.IntegerField(),
                "foreground_height": serializers.IntegerField(),
            },
        )
    },
)
ERROR_DESCRIPTIONS = {
    202: "The job did not finish in time (`not_finished`): poll `job_url` with the key as a token.",
    400: "A bad parameter or image, an image_url that gave none, or no foreground found "
    "(`unknown_foreground`).",
    403: "No API key, or a wrong one (`auth_failed`).",
    409: "The job was canceled or deleted while the request waited.",
    429: "Too many requests or jobs waiting: retry after Retry-After.",
    502: "The job failed in its worker; `code` says why.",
    503: "The queue is unavailable, no worker serves the model, or too many requests wait: "
    "retry after Retry-After.",
}
RESULT_HEADERS = [
    OpenApiParameter(name, OpenApiTypes.INT, OpenApiParameter.HEADER, response=[200], description=text)
    for name, text in (
        ("X-Width", "the result's width"),
        ("X-Height", "the result's height"),
        ("X-Foreground-Top", "the foreground's box in the result, when one was found"),
        ("X-Foreground-Left", ""),
        ("X-Foreground-Width", ""),
        ("X-Foreground-Height", ""),
    )
] + [
    OpenApiParameter(
        "X-Type",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[200],
        description="person, animal, car, transportation, product or other",
    ),
    OpenApiParameter(
        "X-Api-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, description="your API token (remove.bg's key)"
    ),
]


def removebg_exception_handler(exc, context):
    """Our errors, reshaped as remove.bg answers them, with its statuses."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    error = response.data["error"]
    code, message = error["code"], error["message"]
    response.status_code = STATUSES.get(response.status_code, response.status_code)
    if response.status_code == status.HTTP_502_BAD_GATEWAY and (
        code in INPUT_FAILURES or code.startswith("image_url")
    ):
        response.status_code = status.HTTP_400_BAD_REQUEST  # the URL's fault, not the worker's
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        request = context["request"]
        sent = request.META.get("HTTP_X_API_KEY", "").strip() or request.META.get("HTTP_AUTHORIZATION")
        items = [
            {
                "title": "API Key invalid" if sent else "Missing API Key",
                "code": "auth_failed",
                "detailed": message,
            }
        ]
    elif "fields" in error:
        items = [
            _field_error(code, PARAMETERS.get(name, name), problems)
            for name, problems in error["fields"].items()
        ]
    else:
        items = [{"title": message, "code": code}]
    items[0].update({key: error[key] for key in ("job_id", "job_url") if key in error})
    response.data = {"errors": items}
    return response


def _field_error(code, parameter, problems):
    if parameter in ("non_field_errors", "request"):  # the body as a whole
        return {"title": problems[0], "code": code, "detailed": " ".join(problems)}
    return {
        "title": f"{parameter}: {problems[0]}",
        "code": code,
        "detailed": " ".join(problems),
        "source": {"parameter": parameter},
    }


def parameter_error(parameter, message, code="invalid_request"):
    """A 400 naming the remove.bg parameter at fault."""
    error = APIError(code, f"{parameter}: {message}")
    error.extra = {"fields": {parameter: [message]}}
    return error


class RemoveBgView(APIView):
    """POST /v1.0/removebg: the photo's background removed, as remove.bg answers it."""

    authentication_classes = AUTHENTICATION_CLASSES
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    content_negotiation_class = AnyAccept  # images for */*, image/*, text/html alike

    def get_exception_handler(self):
        return removebg_exception_handler

    def get_authenticate_header(self, request):
        return None  # remove.bg answers 403, not 401 with WWW-Authenticate

    @extend_schema(
        tags=["remove.bg API"],
        summary="Remove the background (remove.bg protocol)",
        description="docs/removebg.md: every parameter, how it maps, what differs.",
        request={
            "multipart/form-data": RemoveBgRequest,
            "application/x-www-form-urlencoded": RemoveBgFields,
            "application/json": RemoveBgFields,
        },
        parameters=RESULT_HEADERS,
        responses={
            **{(200, media): OpenApiTypes.BINARY for media in MEDIA_TYPES.values()},
            (200, "application/json"): RESULT,
            **{
                code: OpenApiResponse(RemoveBgError, description=text)
                for code, text in ERROR_DESCRIPTIONS.items()
            },
        },
    )
    def post(self, request):
        multipart = request.content_type.startswith("multipart/")
        # A multipart body may hold the photo and a background image, each up to the limit.
        check_content_length(
            request, 2 * settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD if multipart else body_limit()
        )
        form = (RemoveBgRequest if multipart else RemoveBgFields)(data=request.data)
        form.is_valid(raise_exception=True)
        data = {name: value for name, value in form.validated_data.items() if value != ""}
        spec = resolve(CUTOUT, None)
        plan = Plan(spec, data)
        plan.options("background")  # every parameter checked before anything is decoded
        upload, info, image_url = _image(data)
        files = {}
        if plan.background == "bg_image_file":
            background = data["bg_image_file"]
            files["background" + EXTENSIONS[inspect_upload(background).format]] = background
        options = plan.options(next(iter(files), None))
        fields = {"task": CUTOUT, "files": files, **({"image_url": image_url} if image_url else {})}
        job = run_to_completion(request, upload, info, spec, options, **fields)
        return plan.answer(request, job)


def _image(data):
    """(upload, info, image_url) of the one image source the request gave."""
    given = [name for name in ("image_file", "image_file_b64", "image_url") if name in data]
    if not given:
        raise parameter_error("image_file", "no image given: send image_file, image_file_b64 or image_url")
    if len(given) > 1:
        raise parameter_error(given[1], f"more than one image given ({', '.join(given)}): send one")
    if "image_url" in data:
        return None, None, data["image_url"]
    if "image_file" in data:
        upload = data["image_file"]
    else:
        upload = SimpleUploadedFile("image_file_b64", decode_base64(data["image_file_b64"]))
    return upload, inspect_upload(upload), None


class Plan:
    """What one request asks for: the job's options, and how its files make the answer."""

    def __init__(self, spec, data):
        self.spec, self.data = spec, data
        self.format = data.get("format", "auto")
        self.alpha = data.get("channels") == "alpha"
        self.type = data.get("type", "auto")
        backgrounds = [name for name in ("bg_color", "bg_image_file", "bg_image_url") if name in data]
        if len(backgrounds) > 1:
            raise parameter_error(backgrounds[1], f"one background at most ({', '.join(backgrounds)})")
        self.background = None if self.alpha or self.format == "zip" else next(iter(backgrounds), None)
        if self.format == "zip" and backgrounds:
            raise parameter_error(
                backgrounds[0], "format=zip holds the foreground's colours and alpha: no background applies"
            )
        if self.format == "auto":  # remove.bg's: PNG where the result has transparency
            self.format = "jpg" if self.background else "png"
        self.colour = None  # a bg_color the web process lays under a PNG cutout
        if self.background == "bg_color" and self.format == "png" and not self.alpha:
            self.colour = _colour(data["bg_color"])

    def options(self, background_image):
        """The cutout job's options (cutout_options), with remove.bg's names in any error."""
        data = self.data
        background = "transparent"
        if self.background == "bg_color" and not self.colour:
            background = data["bg_color"]
        elif self.format == "jpg" and not self.background and not self.alpha:
            background = "white"  # remove.bg's JPEG of a transparent result
        try:
            options = cutout_options(
                self.spec,
                foreground=self._foreground(),
                background=background,
                crop=data["crop"],
                crop_margin=data.get("crop_margin") if data["crop"] else None,  # ignored without crop
                background_image=background_image if self.background == "bg_image_file" else None,
                extra_outputs=("color",) if self.format == "zip" else (),
                max_pixels=SIZES[data.get("size", DEFAULT_SIZE)],
            )
        except CutoutOptionError as exc:
            raise parameter_error(PARAMETERS.get(exc.field, exc.field), exc.message) from None
        if self.background == "bg_image_url":  # fetched by the worker, as the image_url is
            options["background"] = "image"
            options["background_url"] = data["bg_image_url"]
        return options

    def _foreground(self):
        wanted = TYPES[self.type]
        first = 1 if self.spec.task == SEMANTIC else 0  # a semantic model's background
        if wanted is None:
            return [label for label in self.spec.labels[first:] if label not in PERSON]
        kept = [label for label in wanted if label in self.spec.labels[first:]]
        if wanted and not kept:
            raise parameter_error("type", f"the model {self.spec.name} has no class of type {self.type}")
        return kept

    def answer(self, request, job):
        summary = job.result
        box = foreground_in_result(summary)
        if box is None:
            error = APIError(
                "unknown_foreground",
                "Could not identify foreground in image: no pixel of the photo was found to be foreground.",
            )
            error.extra = {"job_id": str(job.id), "job_url": job_url(request, job)}
            raise error
        content, media_type = self._result(job)
        width, height = summary["output_size"]
        headers = {"X-Width": str(width), "X-Height": str(height), "X-Type": self._x_type(summary)}
        headers.update({f"X-Foreground-{side.title()}": str(value) for side, value in box.items()})
        if "application/json" in request.headers.get("Accept", ""):
            data = {"result_b64": base64.b64encode(content).decode("ascii")}
            data.update({f"foreground_{side}": value for side, value in box.items()})
            return Response({"data": data}, headers=headers)
        response = HttpResponse(content, content_type=media_type)
        for name, value in headers.items():
            response[name] = value
        return response

    def _result(self, job):
        """(bytes, media type) of the answer, from the job's files."""
        if self.format == "zip":
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # both compressed already
                archive.writestr("color.jpg", read_output(job, "color"))
                archive.writestr("alpha.png", read_output(job, "matte"))
            return buffer.getvalue(), MEDIA_TYPES["zip"]
        if self.alpha:
            matte = read_output(job, "matte")
            return (reencode(matte, "JPEG") if self.format == "jpg" else matte), MEDIA_TYPES[self.format]
        if self.colour:
            return over_colour(read_output(job, "cutout"), self.colour), MEDIA_TYPES["png"]
        if "cutout" in job.outputs:
            return read_output(job, "cutout"), MEDIA_TYPES["png"]
        composite = read_output(job, "composite")
        return (composite if self.format == "jpg" else reencode(composite, "PNG")), MEDIA_TYPES[self.format]

    def _x_type(self, summary):
        if self.type not in ("auto", "graphic"):
            return self.type
        found = set(summary.get("classes") or ())
        return next(
            (name for name, labels in DETECTED_TYPES if found & set(labels)), "product" if found else "other"
        )


def _colour(text):
    try:
        return (*parse_colour(text), 255)
    except ValueError:
        raise parameter_error("bg_color", "a hex colour (81d4fa, fff) or a colour name (green)") from None


def foreground_in_result(summary):
    """{"top", "left", "width", "height"} of the foreground in the result's pixels (after
    the crop and the size cap), or None when none was found."""
    box = summary.get("foreground_box")
    if not box:
        return None
    x, y, width, height = box
    left, top, frame_width, frame_height = summary.get("crop") or [0, 0, *summary["image_size"]]
    out_width, out_height = summary["output_size"]
    sx, sy = out_width / frame_width, out_height / frame_height
    return {
        "top": round((y - top) * sy),
        "left": round((x - left) * sx),
        "width": max(1, round(width * sx)),
        "height": max(1, round(height * sy)),
    }


def over_colour(cutout_png, rgba):
    """A PNG of the cutout over a flat colour, as rembg's bgcolor lays it (alpha_composite):
    exact, where the worker's composite would be a JPEG."""
    cutout = Image.open(io.BytesIO(cutout_png)).convert("RGBA")
    shown = Image.alpha_composite(Image.new("RGBA", cutout.size, tuple(rgba)), cutout)
    buffer = io.BytesIO()
    shown.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()


def reencode(data, image_format):
    """One of the job's images in another format (a matte as JPEG, a composite as PNG)."""
    image = Image.open(io.BytesIO(data))
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, format="PNG", compress_level=PNG_LEVEL)
    return buffer.getvalue()
