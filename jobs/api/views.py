import mimetypes
import re

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponseRedirect
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api import readcache, submission
from jobs.api.backpressure import check_capacity
from jobs.api.errors import APIError
from jobs.api.files import job_file_names, token_is_valid
from jobs.api.filters import JobFilter
from jobs.api.openapi import (
    FILE_PARAMETERS,
    FILE_RESPONSES,
    MODEL_LIST,
    POLL_PARAMETERS,
    SUBMIT_ERRORS,
    SUBMIT_PARAMETERS,
    errors,
)
from jobs.api.serializers import AccountSerializer, JobCreateSerializer, JobSerializer
from jobs.api.uploads import check_content_length, inspect_upload
from jobs.lifecycle import services
from jobs.lifecycle.resolver import catalog, default_models
from jobs.lifecycle.services import EXTENSIONS, DuplicateSubmit, delete_job
from jobs.lifecycle.storage import job_file_path
from jobs.lifecycle.waiting import wait_until_finished, waiting_slot
from jobs.models import Job, WebhookSecret


@extend_schema_view(
    list=extend_schema(
        summary="The caller's jobs, newest first",
        responses={200: JobSerializer(many=True), **errors([400, 401, 404])},
    ),
    retrieve=extend_schema(
        summary="One job; with a wait, once it has finished or the wait is over (long polling)",
        parameters=POLL_PARAMETERS,
        responses={200: JobSerializer, **errors([400, 401, 404])},
    ),
    destroy=extend_schema(summary="Delete a job and its files", responses={204: None, **errors([401, 404])}),
    create=extend_schema(
        summary="Submit an image",
        request={"multipart/form-data": JobCreateSerializer},
        parameters=SUBMIT_PARAMETERS,
        responses={
            200: OpenApiResponse(JobSerializer, description="a retry: the job this Idempotency-Key created"),
            201: OpenApiResponse(JobSerializer, description="finished while the request waited"),
            202: OpenApiResponse(JobSerializer, description="queued (or still in progress after the wait)"),
            **errors(SUBMIT_ERRORS),
        },
    ),
    cancel=extend_schema(
        summary="Cancel a queued or running job",
        request=None,
        responses={200: JobSerializer, **errors([401, 404, 409])},
    ),
)
class JobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    serializer_class = JobSerializer
    filterset_class = JobFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Job.objects.none()
        # Another user's job is simply not found: 404, never 403, so ids leak nothing.
        jobs = Job.objects.filter(owner=self.request.user)
        if self.action == "list":  # one deliveries query for the page, not one per job
            jobs = jobs.prefetch_related("webhook_deliveries__attempts")
        return jobs

    def retrieve(self, request, pk=None):
        # Long polling: a phone that reconnects asks again with a wait, and is answered as
        # soon as the job ends, on the submit's waiting slots (a full process answers now).
        wait, prefer_header = _requested_wait(request)
        headers = {}
        if wait:
            job = self.get_object()  # 404 before waiting: another's job holds no slot
            with waiting_slot() as free:
                if free and job.status not in Job.TERMINAL:
                    wait_until_finished(job.id, wait)
                if free and prefer_header:
                    headers["Preference-Applied"] = f"wait={wait}"
        seen = readcache.generation(pk)  # before the read: a write after it voids the entry
        job = self.get_object()  # fresh; 404 if it was deleted while we waited
        body = self.get_serializer(job).data
        readcache.remember(request, job, body, seen)
        return Response(body, headers=headers)

    def filter_queryset(self, queryset):
        # A detail URL names its job: building the list's FilterSet for it cost a third of
        # a status read.
        return super().filter_queryset(queryset) if self.action == "list" else queryset

    def create(self, request):
        # 1. Refuse oversized bodies before Django spools them to disk, and a bad wait
        #    before anything is stored.
        check_content_length(request)
        wait, prefer_header = _requested_wait(request)
        idempotency_key = idempotency_key_of(request)
        earlier = services.job_with_key(request.user, idempotency_key)
        if earlier is None:
            check_capacity(request.user)  # a retry of an accepted submit is never refused
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)

        # 2. Decode now, so a bad image is the client's 4xx, not a failed job later.
        upload = serializer.validated_data.get("image")
        info = inspect_upload(upload) if upload else None
        files = {}
        if background := serializer.validated_data.get("background_image"):
            files["background" + EXTENSIONS[inspect_upload(background).format]] = background

        # 3. Store and queue, unless this is a retry of a submit that went through.
        if earlier is not None:
            return _replay(request, earlier)
        data = serializer.validated_data
        webhook_url, webhook_events = serializer.webhook()
        try:
            job = submission.create(
                request.user,
                upload,
                info,
                data["spec"],
                serializer.job_options(background_image=next(iter(files), None)),
                webhook_url=webhook_url,
                webhook_events=webhook_events,
                idempotency_key=idempotency_key,
                task=data["task"],
                files=files,
                image_url=data.get("image_url", ""),
            )
        except DuplicateSubmit as duplicate:
            return _replay(request, duplicate.job)

        # 4. Answer now, or once the job has finished if the client asked to wait (and
        #    this process has a waiting slot left; if not, answer now).
        headers = {}
        if wait:
            with waiting_slot() as free:
                if free:
                    job = submission.wait_for(job, wait)
                    if prefer_header:
                        headers["Preference-Applied"] = f"wait={wait}"
        body = JobSerializer(job, context={"request": request}).data
        headers["Location"] = str(body["url"])
        finished = job.status in Job.TERMINAL
        return Response(
            body, status=status.HTTP_201_CREATED if finished else status.HTTP_202_ACCEPTED, headers=headers
        )

    def perform_destroy(self, job):
        delete_job(job)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or running job. A running attempt's results are discarded."""
        job = self.get_object()
        if not job.cancel():
            raise APIError(
                "job_finished",
                f"The job has already {job.status}; it cannot be canceled.",
                status.HTTP_409_CONFLICT,
            )
        return Response(self.get_serializer(job).data)


_PREFER_WAIT = re.compile(r"""(?:^|,)\s*wait\s*=\s*"?([^",;\s]*)"?""", re.IGNORECASE)


def _replay(request, job):
    """A retried submit's answer: the job its Idempotency-Key created, nothing new."""
    body = JobSerializer(job, context={"request": request}).data
    return Response(body, headers={"Location": str(body["url"]), "Idempotent-Replayed": "true"})


def idempotency_key_of(request):
    """The Idempotency-Key header: up to 255 visible ASCII characters, or none."""
    key = request.headers.get("Idempotency-Key", "")
    if key and not re.fullmatch(r"[\x21-\x7e]{1,255}", key):
        raise APIError("invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters")
    return key


def _requested_wait(request):
    """(seconds, whether it came from Prefer): `Prefer: wait=N` (RFC 7240) or `?wait=N`."""
    match = _PREFER_WAIT.search(request.headers.get("Prefer", ""))
    raw = match.group(1) if match else request.query_params.get("wait")
    if raw is None:
        return 0, False
    limit = settings.MAX_WAIT_SECONDS
    # ASCII digits only: str.isdigit() also passes "²" and "٣", which int() refuses or reads.
    if not re.fullmatch(r"[0-9]{1,3}", raw) or int(raw) > limit:
        raise APIError("invalid_wait", f"wait must be a whole number of seconds from 0 to {limit}")
    return int(raw), match is not None


class ModelListView(APIView):
    """Every known model: its spec's facts, the live workers serving it, and the defaults."""

    @extend_schema(summary="The models", responses={200: MODEL_LIST, **errors([401, 503])})
    def get(self, request):
        entries = catalog()
        defaults = default_models(entries)
        models = [
            {
                "name": name,
                "task": entry.spec.task,
                "description": entry.spec.description,
                "labels": list(entry.spec.labels),
                "input_size": [entry.spec.input.width, entry.spec.input.height],
                "runtime": entry.spec.runtime,
                "licence": entry.spec.licence,
                "weights": {
                    "file": entry.spec.weights.file,
                    "sha256": entry.sha256 or entry.spec.weights.sha256,
                },
                "available": bool(entry.workers),
                "workers": entry.workers,
                "default": defaults.get(entry.spec.task) == name,
            }
            for name, entry in entries.items()
        ]
        return Response({"models": models, "defaults": defaults})


class AnyAccept(DefaultContentNegotiation):
    """Files go out as what they are; an image viewer's `Accept: image/*` must not turn
    a file into a 406. Errors are JSON whatever the client accepts."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class JobFileView(APIView):
    """A job's input or output file, for its owner or the holder of a signed URL."""

    permission_classes = [AllowAny]
    content_negotiation_class = AnyAccept
    # An image view loads many files at once; without a valid token each is a quick 404.
    throttle_classes = []

    @extend_schema(
        summary="A job's input or output file",
        description="For the owner's token, or anyone holding the signed URL from the job.",
        parameters=FILE_PARAMETERS,
        responses=FILE_RESPONSES,
    )
    def get(self, request, pk, name):
        job = Job.objects.filter(pk=pk).first()
        if job is None or name not in job_file_names(job):
            raise NotFound()
        is_owner = request.user.is_authenticated and job.owner_id == request.user.pk
        if not (is_owner or token_is_valid(job.id, name, request.query_params.get("token"))):
            raise NotFound()
        path = job_file_path(job, name)
        if settings.MEDIA_DOWNLOADS == "redirect":
            # To a presigned URL of the object, valid MEDIA_REDIRECT_SECONDS: the bytes go from
            # the bucket to the client, not through this process.
            response = HttpResponseRedirect(default_storage.url(path))
            response["Cache-Control"] = (
                "no-store"  # the presigned URL expires; this answer must not outlive it
            )
            return response
        try:
            fileobj = default_storage.open(path, "rb")
        except FileNotFoundError:
            raise NotFound() from None
        response = FileResponse(
            fileobj, content_type=mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        response["Cache-Control"] = "private, max-age=3600"
        return response


class AccountView(APIView):
    """The caller's account: who they are and the secret their webhooks are signed with."""

    @extend_schema(summary="The caller's account", responses={200: AccountSerializer, **errors([401])})
    def get(self, request):
        return Response(_account(request.user))


class RotateWebhookSecretView(APIView):
    """Replace the webhook secret. Deliveries are signed with the old one too for
    WEBHOOK_SECRET_GRACE seconds, so a receiver can switch without missing one."""

    @extend_schema(
        summary="Replace the webhook secret",
        request=None,
        responses={200: AccountSerializer, **errors([401])},
    )
    def post(self, request):
        WebhookSecret.of(request.user).rotate()
        return Response(_account(request.user))


def _account(user):
    secret = WebhookSecret.of(user)
    return AccountSerializer({"username": user.get_username(), "webhook_secret": secret.secret}).data
