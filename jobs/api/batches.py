"""Batches: several images with one set of options in one request, each an ordinary job.

`POST /api/v1/batches/` checks everything a single submit checks, for every image, before
anything is stored (jobs/lifecycle/batches.py stores and queues them); the batch is then
followed by its id, and announced by one `batch.completed` webhook when its last job ends.
"""

import copy

from django.conf import settings
from django.db.models import Prefetch, prefetch_related_objects
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from jobs.api.backpressure import check_capacity
from jobs.api.errors import APIError
from jobs.api.links import absolute_url
from jobs.api.openapi import SUBMIT_PARAMETERS, errors
from jobs.api.serializers import CommaListField, JobCreateSerializer, JobSerializer, WebhookDeliverySerializer
from jobs.api.uploads import MULTIPART_OVERHEAD, check_content_length, inspect_upload, queue_unavailable
from jobs.api.views import idempotency_key_of
from jobs.lifecycle.batches import DuplicateBatch, batch_with_key, create_batch, delete_batch, status_counts
from jobs.lifecycle.services import EXTENSIONS, BrokerUnavailable
from jobs.models import BATCH_WEBHOOK_EVENTS, DELIVERY_EVENTS, WEBHOOK_EVENTS, Batch, Job

# The jobs a batch shows, in the order of its images; two columns are all it needs of them.
BATCH_JOBS = Prefetch(
    "jobs", queryset=Job.objects.order_by("batch_index").only("id", "status", "batch_id", "batch_index")
)


def _each(name):
    """A fresh copy of the single submit's field `name`, to check one item of a list with."""
    return copy.deepcopy(JobCreateSerializer._declared_fields[name])


class BatchCreateSerializer(JobCreateSerializer):
    """A single submit's fields, with `image` or `image_url` repeated: the same checks, once
    for the options all the batch's jobs share and once for each image."""

    image = serializers.ListField(child=_each("image"), required=False, allow_empty=False)
    image_url = serializers.ListField(child=_each("image_url"), required=False, allow_empty=False)
    webhook_events = CommaListField(
        child=serializers.ChoiceField(choices=DELIVERY_EVENTS),
        required=False,
        allow_empty=False,
        max_length=10,
        help_text="batch.completed (the default), and the per-job running and completed",
    )

    def validate(self, data):
        given = [name for name in ("image", "image_url") if name in data]
        if len(given) != 1:
            raise serializers.ValidationError({"image": "send image files or image_urls (one kind of them)"})
        count, limit = len(data[given[0]]), settings.MAX_BATCH_SIZE
        if count > limit:
            raise serializers.ValidationError(
                {given[0]: f"a batch holds at most {limit} images (MAX_BATCH_SIZE); this one has {count}"}
            )
        return super().validate(data)

    def webhooks(self):
        """(url, the jobs' events, the batch's events): `batch.completed` by default."""
        data = self.validated_data
        if "webhook_url" not in data:
            return "", [], []
        asked = set(data.get("webhook_events") or BATCH_WEBHOOK_EVENTS)
        return (
            data["webhook_url"],
            [event for event in WEBHOOK_EVENTS if event in asked],
            [event for event in BATCH_WEBHOOK_EVENTS if event in asked],
        )


class BatchJobSerializer(JobSerializer):
    """One job of a batch: where to find it and how it stands."""

    index = serializers.IntegerField(source="batch_index", help_text="its image's position, from 0")

    class Meta(JobSerializer.Meta):
        fields = ["id", "url", "index", "status"]


class BatchCountsSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    canceled = serializers.IntegerField()


class BatchSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField(
        help_text="active while one of its jobs is queued or running, else finished"
    )
    counts = serializers.SerializerMethodField(help_text="its jobs per status")
    jobs = serializers.SerializerMethodField()
    webhook_deliveries = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = [
            "id",
            "url",
            "status",
            "created_at",
            "finished_at",
            "counts",
            "jobs",
            "webhook_url",
            "webhook_events",
            "webhook_deliveries",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, batch):
        return absolute_url(self.context.get("request"), reverse("batch-detail", kwargs={"pk": batch.id}))

    @extend_schema_field(serializers.ChoiceField(choices=["active", "finished"]))
    def get_status(self, batch):
        # From its jobs, not finished_at: a failed job the admin runs again makes it active
        # again (and batch.completed, sent once, is not sent twice).
        return "active" if any(job.status in Job.ACTIVE for job in self._jobs(batch)) else "finished"

    @extend_schema_field(BatchCountsSerializer)
    def get_counts(self, batch):
        return status_counts(self._jobs(batch))

    @extend_schema_field(BatchJobSerializer(many=True))
    def get_jobs(self, batch):
        return BatchJobSerializer(self._jobs(batch), many=True, context=self.context).data

    @extend_schema_field(WebhookDeliverySerializer(many=True))
    def get_webhook_deliveries(self, batch):
        if not batch.webhook_url:
            return []
        prefetch_related_objects([batch], "webhook_deliveries__attempts")  # done already for a list
        return WebhookDeliverySerializer(batch.webhook_deliveries.all(), many=True, context=self.context).data

    @staticmethod
    def _jobs(batch):
        prefetch_related_objects([batch], BATCH_JOBS)  # done already for a list
        return batch.jobs.all()


class BatchEventSerializer(BatchSerializer):
    """The `batch.completed` payload: the batch as GET answers it, less its deliveries."""

    class Meta(BatchSerializer.Meta):
        fields = [name for name in BatchSerializer.Meta.fields if name != "webhook_deliveries"]


LOCATION = OpenApiParameter(
    "Location",
    OpenApiTypes.URI,
    OpenApiParameter.HEADER,
    required=True,
    response=[200, 202],
    description="the batch's URL",
)
REPLAYED = OpenApiParameter(
    "Idempotent-Replayed", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True, response=[200]
)
IDEMPOTENCY_KEY = [p for p in SUBMIT_PARAMETERS if p.name == "Idempotency-Key"]


@extend_schema_view(
    list=extend_schema(
        summary="The caller's batches, newest first",
        responses={200: BatchSerializer(many=True), **errors([401, 404])},
    ),
    retrieve=extend_schema(summary="One batch", responses={200: BatchSerializer, **errors([401, 404])}),
    destroy=extend_schema(
        summary="Delete a batch, its jobs and their files",
        description="Its unfinished jobs are canceled first.",
        responses={204: None, **errors([401, 404])},
    ),
    create=extend_schema(
        summary="Submit several images with one set of options",
        description="Each image becomes an ordinary job. Every image is checked before anything "
        "is stored: one refused image refuses the batch, its field named by index (`image.6`).",
        request={"multipart/form-data": BatchCreateSerializer},
        parameters=[*IDEMPOTENCY_KEY, LOCATION, REPLAYED],
        responses={
            200: OpenApiResponse(
                BatchSerializer, description="a retry: the batch this Idempotency-Key created"
            ),
            202: OpenApiResponse(BatchSerializer, description="queued"),
            **errors([400, 401, 413, 415, 503]),
        },
    ),
)
class BatchViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    serializer_class = BatchSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Batch.objects.none()
        # Another user's batch is not found: 404, as for a job.
        return Batch.objects.filter(owner=self.request.user).prefetch_related(
            BATCH_JOBS, "webhook_deliveries__attempts"
        )

    def create(self, request):
        # 1. Refuse a body no batch of acceptable images needs, a bad key, bad fields.
        check_content_length(
            request, settings.MAX_BATCH_SIZE * settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
        )
        idempotency_key = idempotency_key_of(request)
        earlier = batch_with_key(request.user, idempotency_key)
        serializer = BatchCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        uploads, urls = data.get("image", []), data.get("image_url", [])

        # 2. Every job counts against the queue caps: the whole batch fits, or none of it.
        if earlier is None:  # a retry of an accepted batch is never refused
            check_capacity(request.user, count=len(uploads) + len(urls))

        # 3. Decode every image now: a bad one is the client's 4xx, naming it, and no job.
        images = [(upload, _inspect(index, upload)) for index, upload in enumerate(uploads)]
        files = {}
        if background := data.get("background_image"):
            files["background" + EXTENSIONS[inspect_upload(background).format]] = background

        # 4. Store and queue, unless this is a retry of a batch that went through.
        if earlier is not None:
            return _replay(request, earlier)
        webhook_url, job_events, batch_events = serializer.webhooks()
        try:
            batch = create_batch(
                request.user,
                data["spec"],
                serializer.job_options(background_image=next(iter(files), None)),
                images=images,
                image_urls=urls,
                webhook_url=webhook_url,
                job_events=job_events,
                batch_events=batch_events,
                idempotency_key=idempotency_key,
                task=data["task"],
                files=files,
            )
        except BrokerUnavailable:
            raise queue_unavailable() from None
        except DuplicateBatch as duplicate:
            return _replay(request, duplicate.batch)
        body = BatchSerializer(batch, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": str(body["url"])})

    def perform_destroy(self, batch):
        delete_batch(batch)


def _inspect(index, upload):
    """inspect_upload for the batch's image at `index`: its refusal names it."""
    try:
        return inspect_upload(upload)
    except APIError as exc:
        field = f"image.{index}"
        refused = APIError(
            exc.error_code, f"{field} ({upload.name}): {exc.detail}", exc.status_code, exc.headers
        )
        refused.extra = {"fields": {field: [str(exc.detail)]}}
        raise refused from None


def _replay(request, batch):
    """A retried batch submit's answer: the batch its Idempotency-Key created, nothing new."""
    body = BatchSerializer(batch, context={"request": request}).data
    return Response(body, headers={"Location": str(body["url"]), "Idempotent-Replayed": "true"})
