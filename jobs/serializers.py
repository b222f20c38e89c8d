from rest_framework import serializers

from workers.catalog import MODELS, TASKS, default_models

from .files import signed_file_url
from .models import Job


class CommaListField(serializers.ListField):
    """A list given as repeated form fields, one comma-separated value, or a JSON array."""

    def to_internal_value(self, data):
        items = []
        for item in data if isinstance(data, list) else [data]:
            items.extend(part.strip() for part in str(item).split(",") if part.strip())
        return super().to_internal_value(items)


class JobCreateSerializer(serializers.Serializer):
    image = serializers.FileField(allow_empty_file=False)
    task = serializers.ChoiceField(choices=TASKS)
    model = serializers.CharField(required=False, max_length=64)
    classes = CommaListField(child=serializers.CharField(max_length=64), required=False, max_length=100)
    score_threshold = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)

    def validate(self, data):
        name = data.get("model") or default_models()[data["task"]]
        spec = MODELS.get(name)
        if spec is None:
            raise serializers.ValidationError(
                {"model": f"unknown model {name!r}; see GET /api/v1/models/"}, code="unknown_model"
            )
        if spec.task != data["task"]:
            raise serializers.ValidationError(
                {"model": f"model {name!r} does {spec.task} segmentation, not {data['task']}"},
                code="model_task_mismatch",
            )
        present, detail = spec.weights_status()
        if not present:
            # Nothing could ever run the job: refuse it rather than leave it queued.
            raise serializers.ValidationError(
                {"model": f"model {name!r} is not installed on this server"}, code="model_unavailable"
            )
        unknown = [c for c in data.get("classes", []) if c not in spec.labels]
        if unknown:
            raise serializers.ValidationError(
                {"classes": f"{', '.join(map(repr, unknown))} not among {name}'s labels"},
                code="unknown_class",
            )
        if "score_threshold" in data and spec.task != "instance":
            raise serializers.ValidationError(
                {"score_threshold": "only instance segmentation takes a score threshold"}
            )
        data["model"] = name
        return data

    def job_options(self):
        data = self.validated_data
        options = {}
        if data.get("classes"):
            options["classes"] = sorted(set(data["classes"]))
        if "score_threshold" in data:
            options["score_threshold"] = data["score_threshold"]
        return options


class JobSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="job-detail")
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
        ]

    def get_input(self, job):
        name = job.input_filename
        return {
            "filename": job.input_name,
            "width": job.input_width,
            "height": job.input_height,
            "url": signed_file_url(self.context["request"], job, name),
        }

    def get_timings(self, job):
        return {"queue_ms": job.queue_ms, "inference_ms": job.inference_ms, "rendering_ms": job.rendering_ms}

    def get_result(self, job):
        if job.status != Job.Status.SUCCEEDED:
            return None
        request = self.context["request"]
        files = {kind: signed_file_url(request, job, name) for kind, name in job.outputs.items()}
        return {"files": files, "summary": job.result}

    def get_error(self, job):
        if not job.error_code:
            return None
        return {"code": job.error_code, "message": job.error_message}
