"""One job, start to finish: claim, decode, infer, render, store, record.

Plain functions: the Celery task, tests and management commands all call run_job().
Only this module touches the ORM and files on the worker side, and no transaction is
held open across inference.
"""

import io
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.storage import default_storage

from core.imageio import ImageError, decode_image
from core.joblog import job_context
from core.specs import CUTOUT, INSTANCE, MATTE, SEMANTIC
from jobs.lifecycle.services import EXTENSIONS
from jobs.lifecycle.storage import delete_job_files, is_unreachable, job_file_path, write_job_file
from jobs.models import Job
from workers import cutout, fitting, registry, rendering, summary
from workers.fetching import fetch_image
from workers.registry import ModelNotLoaded, get_model
from workers.rendering import Rendered

log = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The file store could not be reached; the job is queued again, its attempt uncounted."""


def run_job(job_id, worker, redelivered=False):
    """Run one job if this attempt can claim it; safe to call again for the same id."""
    with job_context(job_id):  # every log line of this job carries its id
        _run_job(job_id, worker, redelivered)


def _run_job(job_id, worker, redelivered):
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        log.info("job %s no longer exists; nothing to do", job_id)
        return
    # A batching worker's threads run several jobs under one node name: a job running under
    # that name may be alive in another thread (a duplicate message), so it is not taken over.
    alone = not registry.shared()
    if not job.claim(worker, redelivered, alone):
        _give_up_if_exhausted(job, worker, redelivered, alone)
        return

    attempt = job.attempts
    try:
        rendered, inference_ms, rendering_ms = _process(job)
    except ImageError as exc:
        job.fail(exc.code, exc.message, attempt)
        return
    except ModelNotLoaded as exc:
        job.fail("model_unavailable", str(exc), attempt)
        return
    except SoftTimeLimitExceeded:  # from Celery, or from a Batcher (a thread's limit)
        job.fail("timeout", f"The job ran longer than {settings.JOB_TIME_LIMIT} s.", attempt)
        return
    except Exception as exc:
        if is_unreachable(exc):
            # Not the job's fault: it waits for the store (the task sends it again later).
            log.warning("job %s: the file store is unreachable, queued again: %s", job.id, exc)
            job.release(attempt)
            raise StoreUnavailable(str(exc)) from exc
        log.exception("job %s failed unexpectedly", job.id)
        job.fail("internal_error", "The job failed because of an internal error.", attempt)
        return

    if job.succeed(rendered.summary, rendered.outputs, inference_ms, rendering_ms):
        log.info("job %s succeeded: attempt %d, inference %d ms", job.id, attempt, inference_ms)
    else:
        _discard(job)


def _discard(job):
    """Our attempt lost: the job was canceled or deleted while it ran (or taken over)."""
    status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
    log.info("job %s is %s; discarding this attempt's results", job.id, status or "deleted")
    if status is None:
        delete_job_files(job.id)
    elif status == Job.Status.CANCELED:
        delete_job_files(job.id, keep=job.input_names())
    # Otherwise another attempt owns the job and its files: leave them alone.


def _process(job):
    # 1. Decode the stored input exactly as the API validated it (claim set `decoding`),
    #    or fetch it from its URL first; and a cutout's background image with it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        decoded, photo, seen = _input(job, _reduction(job), pool)
        background = _background(job)

        # 2. Infer, with results at the original size, then render.
        rendered, inference_ms, rendering_ms = segment(
            photo,
            job.model,
            job.options,
            advance=job.advance,
            task=job.task,
            background_image=background,
            size=(decoded.width, decoded.height),
            seen=seen,
        )

    # 3. Store (part of the rendering stage: a millisecond, not worth a database write).
    for name, data in rendered.files.items():
        write_job_file(job, name, data)
    return rendered, inference_ms, rendering_ms


def _reduction(job):
    """How much smaller than the photo its pixels may be decoded (fitting.reduction); None
    for a cutout, made of the photo's own pixels, and for a model that sizes the photo
    itself. Asks for the model first: a worker without it fails the job as it would anyway."""
    spec = get_model(job.model).spec
    if not settings.OVERLAY_MAX_SIDE or job.task == CUTOUT or spec.input.fit == "native":
        return None
    return fitting.reduction(spec.input, settings.OVERLAY_MAX_SIDE)


def _input(job, reduction, pool):
    """(decoded, photo, seen): the job's photo decoded, its pixels, and for a cutout the
    network's copy of it, or None (segment makes it). One given by URL is fetched once and
    stored: a later attempt finds it as an uploaded one (and the client can download what
    was used).

    A stored JPEG's cutout decodes twice: libjpeg's reduced decode for the network first,
    then the whole photo on `pool` while the network runs. `photo` is then the Future of
    its pixels (12 MP: 14 ms more CPU, the 70 ms of the whole decode out of the way).
    """
    if network_reduction := _network_decode(job):
        data = _read(job.input)
        decoded = decode_image(io.BytesIO(data), settings.MAX_IMAGE_PIXELS, network_reduction)
        whole = pool.submit(lambda: decode_image(io.BytesIO(data), settings.MAX_IMAGE_PIXELS).rgb)
        return decoded, whole, decoded.rgb
    if job.input:
        with job.input.open("rb") as fileobj:
            decoded = decode_image(fileobj, settings.MAX_IMAGE_PIXELS, reduction)
        return decoded, decoded.rgb, None
    data = fetch_image(job.input_url)
    decoded = decode_image(io.BytesIO(data), settings.MAX_IMAGE_PIXELS, reduction)
    name = write_job_file(job, "input" + EXTENSIONS[decoded.format], data)
    job.record_input(name, decoded.width, decoded.height)
    return decoded, decoded.rgb, None


def _network_decode(job):
    """The reduction a cutout's network copy is decoded at, apart from its photo; None
    unless the input is a stored JPEG (libjpeg decodes it reduced for a fraction of the
    work) that the network's copy is smaller than."""
    if job.task != CUTOUT or not job.input or not job.input.name.endswith(EXTENSIONS["JPEG"]):
        return None
    spec_input = get_model(job.model).spec.input
    if spec_input.fit == "native" or not job.input_width or not job.input_height:
        return None
    reduction = fitting.network_reduction(spec_input)
    return reduction if reduction(job.input_width, job.input_height) > 1 else None


def _read(field):
    with field.open("rb") as fileobj:
        return fileobj.read()


def _background(job):
    """A cutout's background image, decoded: uploaded with the job, or fetched by URL."""
    if "background_image" in job.options:
        with default_storage.open(job_file_path(job, job.options["background_image"]), "rb") as fileobj:
            return decode_image(fileobj, settings.MAX_IMAGE_PIXELS).rgb
    if "background_url" in job.options:
        return decode_image(
            io.BytesIO(fetch_image(job.options["background_url"])), settings.MAX_IMAGE_PIXELS
        ).rgb
    return None


def segment(
    rgb, model, options, advance=lambda stage: None, task=None, background_image=None, size=None, seen=None
):
    """Infer and render one decoded image with a loaded model; no database, no files.

    Shared by the worker and `manage.py segment`. `task` is the job's (its model's own,
    or cutout), `background_image` a cutout's decoded background, `size` the photo's own
    (width, height) where `rgb` is a reduced copy. A cutout's `seen` is the copy of the
    photo its network sees, if the caller decoded one (else made here), and its `rgb` may
    then be a Future of the photo, still decoding. Returns (Rendered, inference_ms,
    rendering_ms); `advance` hears each stage as it starts.
    """
    loaded = get_model(model)
    spec = loaded.spec
    task = task or spec.task
    advance(Job.Stage.INFERRING)
    started = time.monotonic()
    if task == CUTOUT:
        # The photo is whole (a cutout is made of every pixel): the network gets a smaller
        # copy, and its answer stays at the copy's size until refined against the photo.
        seen = seen if seen is not None else fitting.network_copy(rgb, spec.input)
        result = loaded.infer(seen, _model_options(options, spec))
    else:
        size = size or (rgb.shape[1], rgb.shape[0])
        result = loaded.infer(rgb, _model_options(options, spec), size)
    inference_ms = _elapsed_ms(started)
    rgb = rgb.result() if isinstance(rgb, Future) else rgb  # timed as neither, as decoding never is

    advance(Job.Stage.RENDERING)
    started = time.monotonic()
    if task == CUTOUT:
        rendered = cutout.render_cutout(rgb, result, spec, options, background_image, seen)
    else:
        rendered = RENDERERS[task](rgb, result, spec.labels, size)
    return rendered, inference_ms, _elapsed_ms(started)


def _render_semantic(rgb, result, labels, size):
    counts = rendering.pixel_counts(result.class_map)  # for both the legend and the summary
    overlay_name, overlay = rendering.encode_overlay(
        rendering.semantic_overlay(rgb, result.class_map, labels, counts)
    )
    return Rendered(
        files={
            "mask.png": rendering.palette_png(result.class_map, rendering.voc_palette()),
            overlay_name: overlay,
        },
        outputs={"mask": "mask.png", "overlay": overlay_name},
        summary=summary.semantic_summary(result.class_map, labels, counts),
    )


def _render_instance(rgb, result, labels, size):
    width, height = size
    index_map = rendering.instance_map(result.instances, height, width)
    overlay_name, overlay = rendering.encode_overlay(
        rendering.instance_overlay(rgb, result.instances, index_map, labels)
    )
    return Rendered(
        files={
            "instances.png": rendering.palette_png(index_map, rendering.instance_palette()),
            overlay_name: overlay,
        },
        outputs={"instances": "instances.png", "overlay": overlay_name},
        summary=summary.instance_summary(result.instances, height, width, labels),
    )


def _render_matte(rgb, result, labels, size):
    alpha = rendering.alpha_levels(result.alpha)
    return Rendered(
        files={"alpha.png": rendering.grey_png(alpha)},
        outputs={"alpha": "alpha.png"},
        summary=summary.matte_summary(alpha, labels),
    )


RENDERERS = {SEMANTIC: _render_semantic, INSTANCE: _render_instance, MATTE: _render_matte}


def _model_options(job_options, spec):
    """A job's options as a model's infer() takes them: label names become class ids."""
    options = {}
    if job_options.get("classes"):
        options["class_ids"] = [spec.labels.index(name) for name in job_options["classes"]]
    if "score_threshold" in job_options:
        options["score_threshold"] = float(job_options["score_threshold"])
    return options


def _give_up_if_exhausted(job, worker, redelivered, alone):
    """A job redelivered after killing its worker JOB_MAX_ATTEMPTS times ends failed.

    Only when its last attempt is known to be dead (the same rule as Job.claim): a stray
    duplicate message must not fail an attempt that is still running elsewhere.
    """
    last_attempt_dead = job.status == Job.Status.QUEUED or (alone and job.worker == worker) or redelivered
    if job.status in Job.ACTIVE and job.attempts >= settings.JOB_MAX_ATTEMPTS and last_attempt_dead:
        job.fail(
            "worker_lost",
            f"The worker running this job stopped {job.attempts} times; giving up.",
            attempt=job.attempts if job.status == Job.Status.RUNNING else None,
        )
    else:
        log.info("job %s not claimed (status %s); skipping", job.id, job.status)


def _elapsed_ms(started):
    return int((time.monotonic() - started) * 1000)
