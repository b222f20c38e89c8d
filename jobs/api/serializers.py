from django.db.models import prefetch_related_objects
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.specs import CUTOUT, INSTANCE, JOB_TASKS, MATTE
from jobs.api.files import signed_file_url
from jobs.api.links import absolute_url
from jobs.api.uploads import image_url_validator
from jobs.lifecycle import resolver
from jobs.lifecycle.cutouts import CutoutOptionError, cutout_options
from jobs.models import WEBHOOK_EVENTS, Job, WebhookAttempt, WebhookDelivery
from jobs.webhooks.addresses import MAX_URL_LENGTH, WebhookURLError, resolve_webhook


class CommaListField(serializers.ListField):
    """A list given as repeated form fields, one comma-separated value, or a JSON array."""

    default_error_messages = {"too_long": "Ensure this field has no more than {max_length} elements."}

    def to_internal_value(self, data):
        given = data if isinstance(data, list) else [data]
        # Refused on its raw size before any splitting: megabytes of "a,a,a,..." split and
        # checked item by item would cost seconds of CPU, holding the GIL.
        longest = self.max_length * ((getattr(self.child, "max_length", None) or 64) + 1)
        if len(given) > self.max_length or sum(len(str(item)) for item in given) > longest:
            self.fail("too_long", max_length=self.max_length)
        items = []
        for item in given:
            items.extend(part.strip() for part in str(item).split(",") if part.strip())
        return super().to_internal_value(items)


CUTOUT_FIELDS = ("foreground", "background", "blur_radius", "background_image", "crop", "crop_margin")


class JobCreateSerializer(serializers.Serializer):
    image = serializers.FileField(allow_empty_file=False, required=False)
    image_url = serializers.CharField(
        required=False,
        max_length=MAX_URL_LENGTH,
        validators=[image_url_validator],
        help_text="instead of image: fetched by the worker",
    )
    task = serializers.ChoiceField(choices=JOB_TASKS)
    model = serializers.CharField(required=False, max_length=64)
    classes = CommaListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    score_threshold = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    # A cutout's: see jobs/lifecycle/cutouts.py.
    foreground = CommaListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    background = serializers.CharField(required=False, max_length=64)
    blur_radius = serializers.FloatField(required=False)
    background_image = serializers.FileField(required=False, allow_empty_file=False)
    # Null when absent: a multipart form's missing checkbox would otherwise read as false.
    crop = serializers.BooleanField(required=False, allow_null=True, default=None)
    crop_margin = serializers.CharField(required=False, max_length=16)
    webhook_url = serializers.CharField(required=False, max_length=MAX_URL_LENGTH)
    webhook_events = CommaListField(
        child=serializers.ChoiceField(choices=WEBHOOK_EVENTS),
        required=False,
        allow_empty=False,
        max_length=10,
    )

    def validate_webhook_url(self, url):
        try:
            # Within WEBHOOK_DNS_TIMEOUT, as this holds a web thread; checked again at every
            # attempt, after a fresh resolution.
            resolve_webhook(url)
        except WebhookURLError as exc:
            raise serializers.ValidationError(str(exc), code="invalid_webhook_url") from None
        return url

    def validate(self, data):
        if ("image" in data) == ("image_url" in data):
            raise serializers.ValidationError({"image": "send an image file, or an image_url (one of them)"})
        # A refused model (unknown, wrong task, served by no live worker) is answered by
        # the exception handler in the same shape as on every other endpoint.
        spec = resolver.resolve(data["task"], data.get("model"))
        if data["task"] == CUTOUT:
            self._check_cutout(spec, data)
        elif given := [name for name in CUTOUT_FIELDS if data.get(name) is not None]:
            raise serializers.ValidationError({given[0]: f"{given[0]} is an option of task=cutout"})
        unknown = [c for c in data.get("classes", []) if c not in spec.labels]
        if spec.task == MATTE and data.get("classes"):
            raise serializers.ValidationError(
                {"classes": "a matte model has one foreground; classes do not apply"}
            )
        if unknown:
            raise serializers.ValidationError(
                {"classes": f"{', '.join(map(repr, unknown))} not among {spec.name}'s labels"},
                code="unknown_class",
            )
        if "score_threshold" in data and spec.task != INSTANCE:  # a cutout's model's task
            raise serializers.ValidationError(
                {"score_threshold": "only instance segmentation takes a score threshold"}
            )
        if "webhook_events" in data and "webhook_url" not in data:
            raise serializers.ValidationError({"webhook_events": "webhook_events needs a webhook_url"})
        data["spec"] = spec
        return data

    def _check_cutout(self, spec, data):
        if "classes" in data:
            raise serializers.ValidationError({"classes": "a cutout names its classes as foreground"})
        try:
            self._cutout_options(spec, data, "background")
        except CutoutOptionError as exc:
            raise serializers.ValidationError({exc.field: exc.message}) from None

    @staticmethod
    def _cutout_options(spec, data, background_image):
        return cutout_options(
            spec,
            foreground=data.get("foreground", ()),
            background=data.get("background", "transparent"),
            blur_radius=data.get("blur_radius"),
            crop=data.get("crop", False),
            crop_margin=data.get("crop_margin"),
            background_image=background_image if "background_image" in data else None,
        )

    def webhook(self):
        """(url, events) for the job: events in lifecycle order, `completed` by default."""
        data = self.validated_data
        if "webhook_url" not in data:
            return "", []
        events = set(data.get("webhook_events") or ["completed"])
        return data["webhook_url"], [event for event in WEBHOOK_EVENTS if event in events]

    def job_options(self, background_image=None):
        """The job's options; `background_image`: the stored background's file name."""
        data = self.validated_data
        if data["task"] == CUTOUT:
            options = self._cutout_options(data["spec"], data, background_image)
            if "score_threshold" in data:
                options["score_threshold"] = data["score_threshold"]
            return options
        options = {}
        if data.get("classes"):
            options["classes"] = sorted(set(data["classes"]))
        if "score_threshold" in data:
            options["score_threshold"] = data["score_threshold"]
        return options


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "duration_ms", "status_code", "response_body", "error"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    attempts = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "state", "url", "created_at", "next_attempt_at", "attempts"]


class JobInputSerializer(serializers.Serializer):
    filename = serializers.CharField(help_text="the uploaded file's name")
    width = serializers.IntegerField(allow_null=True, help_text="as displayed: EXIF orientation applied")
    height = serializers.IntegerField(allow_null=True)
    url = serializers.URLField(
        allow_null=True,
        help_text="signed, expires after FILE_URL_MAX_AGE; null until an image_url is fetched",
    )
    source_url = serializers.CharField(allow_null=True, help_text="the image_url it was fetched from, if any")


class JobTimingsSerializer(serializers.Serializer):
    queue_ms = serializers.IntegerField(allow_null=True)
    inference_ms = serializers.IntegerField(allow_null=True)
    rendering_ms = serializers.IntegerField(allow_null=True)


class JobResultSerializer(serializers.Serializer):
    files = serializers.DictField(
        child=serializers.URLField(), help_text="kind (mask, overlay, instances, alpha) -> signed URL"
    )
    summary = serializers.DictField(
        help_text="per-class pixel counts; the instances with their RLE masks and polygons (pixel "
        "corners of the original photo, `polygons: [{exterior, holes}]`, at most `polygon_budget."
        "max_points` points per job); a matte's foreground fraction; or a cutout's foreground "
        "fraction, box and classes"
    )


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class JobBatchSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.URLField()
    index = serializers.IntegerField(help_text="this job's image's position in the batch, from 0")


class JobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    input = serializers.SerializerMethodField()
    timings = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "url",
            "status",
            "progress",
            "task",
            "model",
            "options",
            "input",
            "created_at",
            "started_at",
            "finished_at",
            "timings",
            "attempts",
            "result",
            "error",
            "batch",
            "webhook_url",
            "webhook_events",
            "webhook_deliveries",
        ]

    webhook_deliveries = serializers.SerializerMethodField()
    batch = serializers.SerializerMethodField(help_text="the batch it was submitted in; null for a job alone")
    progress = serializers.SerializerMethodField(
        help_text="while queued or running: queued, decoding, inferring or rendering (which includes storing the files); null once ended"
    )

    @extend_schema_field(serializers.ChoiceField(choices=Job.Stage.choices, allow_null=True))
    def get_progress(self, job):
        return job.stage if job.status in Job.ACTIVE else None

    @extend_schema_field(WebhookDeliverySerializer(many=True))
    def get_webhook_deliveries(self, job):
        # Most jobs have no webhook: their reads skip the deliveries query altogether.
        if not job.webhook_url:
            return []
        prefetch_related_objects([job], "webhook_deliveries__attempts")  # done already for a list
        return WebhookDeliverySerializer(job.webhook_deliveries.all(), many=True, context=self.context).data

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, job):
        return absolute_url(self.context.get("request"), reverse("job-detail", kwargs={"pk": job.id}))

    @extend_schema_field(JobBatchSerializer(allow_null=True))
    def get_batch(self, job):
        if job.batch_id is None:
            return None
        url = absolute_url(self.context.get("request"), reverse("batch-detail", kwargs={"pk": job.batch_id}))
        return {"id": str(job.batch_id), "url": url, "index": job.batch_index}

    @extend_schema_field(JobInputSerializer)
    def get_input(self, job):
        return {
            "filename": job.input_name,
            "width": job.input_width,
            "height": job.input_height,
            "url": signed_file_url(self.context.get("request"), job, job.input_filename)
            if job.input
            else None,
            "source_url": job.input_url or None,
        }

    @extend_schema_field(JobTimingsSerializer)
    def get_timings(self, job):
        return {"queue_ms": job.queue_ms, "inference_ms": job.inference_ms, "rendering_ms": job.rendering_ms}

    @extend_schema_field(JobResultSerializer(allow_null=True))
    def get_result(self, job):
        if job.status != Job.Status.SUCCEEDED:
            return None
        request = self.context.get("request")
        files = {kind: signed_file_url(request, job, name) for kind, name in job.outputs.items()}
        return {"files": files, "summary": job.result}

    @extend_schema_field(JobErrorSerializer(allow_null=True))
    def get_error(self, job):
        if not job.error_code:
            return None
        return {"code": job.error_code, "message": job.error_message}


class JobEventSerializer(JobSerializer):
    """A webhook's payload: the job as GET answers it, less the deliveries themselves
    (a payload cannot describe its own delivery, and a snapshot of it would go stale)."""

    class Meta(JobSerializer.Meta):
        fields = [name for name in JobSerializer.Meta.fields if name != "webhook_deliveries"]


class AccountSerializer(serializers.Serializer):
    username = serializers.CharField(read_only=True)
    webhook_secret = serializers.CharField(read_only=True, help_text="whsec_...: verifies webhook signatures")
