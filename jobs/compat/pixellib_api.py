"""The PixelLib + Flask tutorial API that iOS apps call: base64 image in, overlay out.

POST /semantic or /instance with {"image": "<base64>"} answers {"output_image": "<base64>"},
the segmented overlay in the input's format (JPEG in, JPEG out). iOS encodes base64 with a
line break every 64 characters, and some clients send a `data:` URL: both are accepted.
"""

import base64
import binascii
import io
import re

from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.utils import extend_schema
from PIL import Image
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.specs import INSTANCE, SEMANTIC
from jobs.api.errors import APIError
from jobs.api.openapi import SYNC_ERRORS, errors
from jobs.api.parsers import JSONParser
from jobs.api.uploads import body_limit, check_content_length, inspect_upload
from jobs.compat.auth import AUTHENTICATION_CLASSES
from jobs.compat.sync import read_output, run_to_completion
from jobs.lifecycle.resolver import resolve

_DATA_URL = re.compile(r"^\s*data:[^,]{0,100},")
_WHITESPACE = re.compile(r"\s+")
# Pillow's save() options per format: a JPEG overlay at a quality a phone shows well.
SAVE_OPTIONS = {"JPEG": {"quality": 90}, "WEBP": {"quality": 90}}


class PixelLibRequest(serializers.Serializer):
    image = serializers.CharField(help_text="The image file, base64 (line breaks and a data: prefix allowed)")
    model = serializers.CharField(
        required=False, max_length=64, help_text="a model of this task; its default when absent"
    )


class PixelLibResponse(serializers.Serializer):
    output_image = serializers.CharField(
        help_text="The overlay, base64, in the input image's format (JPEG for HEIC and AVIF)"
    )


def decode_base64(text):
    """The bytes of a base64 image as iOS and browsers send it, or a 400."""
    text = _WHITESPACE.sub("", _DATA_URL.sub("", text, count=1))
    text += "=" * (-len(text) % 4)  # some encoders drop the padding
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:  # the URL-safe alphabet (- and _), as some web clients use
            data = base64.b64decode(text, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise APIError("invalid_base64", "image is not valid base64") from None
    if not data:
        raise APIError("invalid_image", "image is empty")
    return data


def encode_like(png_bytes, image_format):
    """The overlay re-encoded in the client's own format, as base64; JPEG for a HEIC or AVIF
    photo (their encoders take seconds in a web thread, and every client reads JPEG)."""
    image = Image.open(io.BytesIO(png_bytes))
    image_format = "JPEG" if image_format in ("HEIF", "AVIF") else image_format
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=image_format, **SAVE_OPTIONS.get(image_format, {}))
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class _SegmentView(APIView):
    authentication_classes = AUTHENTICATION_CLASSES
    parser_classes = [JSONParser]
    task = None

    @extend_schema(
        tags=["PixelLib iOS API"],
        request=PixelLibRequest,
        responses={200: PixelLibResponse, **errors(SYNC_ERRORS)},
    )
    def post(self, request):
        check_content_length(request, body_limit())
        form = PixelLibRequest(data=request.data)
        form.is_valid(raise_exception=True)
        spec = resolve(self.task, form.validated_data.get("model"))
        upload = SimpleUploadedFile("upload", decode_base64(form.validated_data["image"]))
        info = inspect_upload(upload)
        job = run_to_completion(request, upload, info, spec)
        overlay = read_output(job, "overlay")
        return Response({"output_image": encode_like(overlay, info.format)}, status=status.HTTP_200_OK)


class SemanticView(_SegmentView):
    """POST /semantic: PASCAL VOC classes painted over the photo."""

    task = SEMANTIC


class InstanceView(_SegmentView):
    """POST /instance: every object's mask, box, label and score over the photo."""

    task = INSTANCE
