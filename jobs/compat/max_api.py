"""IBM MAX Image Segmenter's API: predict, metadata, labels, with MAX's shapes.

`seg_map` is the class id of every pixel of the image resized (as MAX resizes it, by int()
truncation) so that its longest side is MAX_IMAGE_SIZE; rows are the height. Errors have
MAX's shape, {"status": "error", "message": ...}, plus our stable `code`.
"""

import io

import numpy as np
from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from PIL import Image
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.specs import SEMANTIC
from jobs.api.errors import exception_handler
from jobs.api.openapi import SYNC_ERRORS, MAXError, errors
from jobs.api.uploads import check_content_length, inspect_upload
from jobs.compat.auth import AUTHENTICATION_CLASSES
from jobs.compat.sync import read_output, run_to_completion
from jobs.lifecycle.resolver import ModelRefused, resolve

MODEL_TYPES = {"mobile": "deeplabv3_mnv2_pascal", "full": "deeplabv3plus_xception_pascal"}


class PredictRequest(serializers.Serializer):
    image = serializers.FileField(allow_empty_file=False, help_text="An image file (PNG, JPEG, ...)")
    model = serializers.CharField(
        required=False,
        max_length=64,
        help_text="`mobile`, `full` or a semantic model's name; MAX_MODEL_TYPE when absent",
    )


def max_exception_handler(exc, context):
    """Our errors, reshaped as MAX answered them."""
    response = exception_handler(exc, context)
    if response is None:
        return None
    error = response.data["error"]
    body = {"status": "error", "message": error["message"], "code": error["code"]}
    if "fields" in error:
        body["message"] = "Input payload validation failed"
        body["errors"] = {name: " ".join(problems) for name, problems in error["fields"].items()}
    body.update({key: error[key] for key in ("job_id", "job_url") if key in error})
    response.data = body
    return response


class MAXView(APIView):
    authentication_classes = AUTHENTICATION_CLASSES

    def get_exception_handler(self):
        return max_exception_handler


def resolve_model(requested=None):
    """The semantic model a MAX request runs: its `model`, else MAX_MODEL_TYPE's.

    `full` configured but served by no live worker falls back to `mobile`: the operator
    asked for the best model there is, not for a 503 while the heavy worker starts.
    """
    if requested:
        return resolve(SEMANTIC, MODEL_TYPES.get(requested, requested))
    name = MODEL_TYPES[settings.MAX_MODEL_TYPE]
    try:
        return resolve(SEMANTIC, name)
    except ModelRefused as refusal:
        if name == MODEL_TYPES["full"] and refusal.code == "model_unavailable":
            return resolve(SEMANTIC, MODEL_TYPES["mobile"])
        raise


def max_size(width, height):
    """MAX's resize: the longest side becomes MAX_IMAGE_SIZE, the other is truncated."""
    ratio = settings.MAX_IMAGE_SIZE / max(width, height)
    return max(1, int(ratio * width)), max(1, int(ratio * height))


PREDICT_RESPONSE = inline_serializer(
    "MAXPrediction",
    {
        "status": serializers.ChoiceField(choices=["ok"]),
        "image_size": serializers.ListField(
            child=serializers.IntegerField(), help_text="[width, height] of seg_map"
        ),
        "seg_map": serializers.ListField(
            child=serializers.ListField(child=serializers.IntegerField()), help_text="rows of class ids"
        ),
    },
)
METADATA_RESPONSE = inline_serializer(
    "MAXMetadata",
    {name: serializers.CharField() for name in ("id", "name", "description", "type", "license", "source")},
)
LABELS_RESPONSE = inline_serializer(
    "MAXLabel", {"id": serializers.IntegerField(), "name": serializers.CharField()}, many=True
)


class PredictView(MAXView):
    """POST /model/predict: segment an image and answer MAX's seg_map."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        tags=["MAX Image Segmenter"],
        summary="Segment an image (MAX protocol)",
        request={"multipart/form-data": PredictRequest},
        responses={200: PREDICT_RESPONSE, **errors(SYNC_ERRORS, MAXError)},
    )
    def post(self, request):
        check_content_length(request)
        form = PredictRequest(data=request.data)
        form.is_valid(raise_exception=True)
        spec = resolve_model(form.validated_data.get("model"))
        upload = form.validated_data["image"]
        info = inspect_upload(upload)
        job = run_to_completion(request, upload, info, spec)
        mask = Image.open(io.BytesIO(read_output(job, "mask")))
        size = max_size(*mask.size)
        seg_map = np.asarray(mask.resize(size, Image.NEAREST)).tolist()
        return Response({"status": "ok", "image_size": list(size), "seg_map": seg_map})


class MetadataView(MAXView):
    """GET /model/metadata: MAX's identity, describing the model this server runs."""

    @extend_schema(
        tags=["MAX Image Segmenter"], responses={200: METADATA_RESPONSE, **errors([401, 503], MAXError)}
    )
    def get(self, request):
        spec = resolve_model()
        return Response(
            {
                # id, name and type are MAX's own, so that clients checking them still work;
                # description and license describe the model this server actually runs.
                "id": "max-image-segmenter",
                "name": "MAX Image Segmenter",
                "description": f"{spec.description}. Served by segment-backend as model {spec.name}.",
                "type": "Object Detection",
                "license": spec.weights.licence,
                "source": "segment-backend's MAX-compatible API (docs/max-image-segmenter.md)",
            }
        )


class LabelsView(MAXView):
    """GET /model/labels: the 21 PASCAL VOC labels, in class id order."""

    @extend_schema(
        tags=["MAX Image Segmenter"], responses={200: LABELS_RESPONSE, **errors([401, 503], MAXError)}
    )
    def get(self, request):
        spec = resolve_model()
        return Response([{"id": index, "name": name} for index, name in enumerate(spec.labels)])
