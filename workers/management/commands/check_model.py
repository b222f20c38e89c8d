"""`manage.py check_model PATH_OR_NAME [--image FILE]`: is this model folder ready to serve?

For someone adding a model: reads its model.toml, checks the weight file against it (size,
sha256, then the tensors the file really takes and gives), runs one image through the
worker's pipeline, and prints what it found. A wrong spec fails with the message a worker
would log, naming the field to change; no broker, no database.
"""

import json
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.imageio import ImageError, decode_image
from core.repository import repository
from core.specs import INSTANCE, MATTE, SEMANTIC, SpecError, load_spec
from workers import registry
from workers.model import Model, ModelLoadError
from workers.pipeline import segment

# No --image: a gradient at a common camera aspect, so letterboxing and resizing both run.
SYNTHETIC_SIZE = (640, 480)


class Command(BaseCommand):
    help = "Check a model folder (or a model in SEGMENT_MODELS_DIR): spec, weights, tensors, one image."
    requires_system_checks = []  # nothing here touches the database

    def add_arguments(self, parser):
        parser.add_argument(
            "model", help="a folder holding model.toml, or a model name in SEGMENT_MODELS_DIR"
        )
        parser.add_argument("--image", type=Path, help="a photo to run (default: a synthetic gradient)")

    def handle(self, model, image=None, **options):
        try:
            spec = load_spec(_folder(model))
        except SpecError as exc:
            raise CommandError(str(exc)) from None
        loaded = _load(spec)
        self._describe(loaded)
        rgb, where = _image(image)
        rendered, inference_ms, _ = segment(rgb, spec.name, {})
        self._report(spec, rendered, f"{where}, {rgb.shape[1]}x{rgb.shape[0]}", inference_ms)
        self.stdout.write(f"OK: {spec.name} is ready to serve")

    def _describe(self, model):
        spec, runtime = model.spec, model.runtime
        checksum = "checked" if spec.weights.sha256 else "no published checksum"
        self.stdout.write(f"name: {spec.name}")
        self.stdout.write(f"task: {spec.task}")
        self.stdout.write(f"runtime: {spec.runtime}")
        self.stdout.write(f"weights: {spec.weights_path()} ({spec.weights_path().stat().st_size} bytes)")
        self.stdout.write(f"sha256: {model.sha256} ({checksum})")
        self.stdout.write(f"input: {runtime.input_shape} {runtime.input_dtype}")
        self.stdout.write(f"outputs: {', '.join(str(shape) for shape in runtime.output_shapes)}")
        self.stdout.write(f"labels: {len(spec.labels)}")

    def _report(self, spec, rendered, image, inference_ms):
        self.stdout.write(f"image: {image}")
        self.stdout.write(f"inference: {inference_ms} ms")
        summary = rendered.summary
        if spec.task == SEMANTIC:
            self.stdout.write("classes:")
            for found in sorted(summary["classes"], key=lambda c: -c["pixels"]):
                self.stdout.write(f"  {found['label']}: {found['fraction']:.4f}")
        elif spec.task == INSTANCE:
            self.stdout.write(f"instances: {len(summary['instances'])}")
            for found in summary["instances"]:
                self.stdout.write(f"  {found['label']}: {found['score']:.2f}")
        elif spec.task == MATTE:
            self.stdout.write(f"foreground ({summary['foreground']}): {summary['foreground_fraction']:.4f}")
        # What `manage.py segment` and a job write, result.json included.
        files = {**rendered.files, "result.json": json.dumps(summary, indent=2).encode()}
        self.stdout.write("files:")
        for name, data in files.items():
            self.stdout.write(f"  {name}: {len(data)} bytes")


def _folder(model):
    """The model's folder: `model` itself when it is a path, else SEGMENT_MODELS_DIR/`model`."""
    path = Path(model)
    if path.is_dir() or "/" in model:
        return path.resolve()  # load_spec says what is missing from a folder that is not one
    models = repository()
    # A model whose spec is broken is a folder too: load_spec gives its error, not "unknown".
    names = sorted({*models.specs, *models.problems})
    if model not in names:
        raise CommandError(
            f"{model} is neither a folder nor a model in {models.folder}; the models there: {', '.join(names)}"
        )
    return models.folder / model


def _load(spec):
    """The model, loaded for segment(), its weight file and tensors checked against the spec."""
    try:
        registry.load_models([spec])  # builds Model(spec), which does the checking
        model = registry.get_model(spec.name)
        if (model.spec, model.spec.folder) != (spec, spec.folder):
            # One of this name was loaded earlier in this process (call_command from a
            # test or a shell), and the registry keeps it: check this spec on its own.
            Model(spec)
            raise CommandError(
                f"another {spec.name} (from {model.spec.folder}) is already loaded in this process, "
                "and segment() would run that one: run check_model in a process of its own"
            )
    except ModelLoadError as exc:
        raise CommandError(str(exc)) from None
    return model


def _image(path):
    """(rgb, a description) of --image, decoded as a job's upload is, or of a synthetic one."""
    if path is None:
        width, height = SYNTHETIC_SIZE
        x = np.linspace(0, 255, width, dtype=np.uint8)
        y = np.linspace(0, 255, height, dtype=np.uint8)
        planes = np.broadcast_arrays(x[None, :], y[:, None], np.full((height, width), 128, np.uint8))
        return np.stack(planes, axis=2), "synthetic gradient"
    try:
        with open(path, "rb") as fileobj:
            return decode_image(fileobj, settings.MAX_IMAGE_PIXELS).rgb, str(path)
    except (OSError, ImageError) as exc:
        raise CommandError(f"{path}: {getattr(exc, 'message', exc)}") from None
