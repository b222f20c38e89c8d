"""`manage.py segment IMAGE [IMAGE ...] --model M --out DIR`: the worker's pipeline in this
process, with no broker and no database: for batch runs and for trying a model.

Each image gets a folder of its own in DIR holding what the API serves for a job: the mask
(or instance map) PNG, the overlay JPEG, and result.json with the job's `result`.
"""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.imageio import ImageError, decode_image
from core.repository import local_specs
from workers import registry
from workers.model import ModelLoadError
from workers.pipeline import segment


class Command(BaseCommand):
    help = "Segment image files in this process (no broker or database) and write the results."
    requires_system_checks = []  # nothing here touches the database

    def add_arguments(self, parser):
        parser.add_argument("images", nargs="+", type=Path)
        parser.add_argument("--model", required=True, choices=sorted(local_specs()))
        parser.add_argument("--out", required=True, type=Path, help="folder for the results")
        parser.add_argument("--classes", help="comma-separated labels to keep (default: all)")
        parser.add_argument("--score-threshold", type=float, help="instance models: minimum score")

    def handle(self, images, model, out, classes=None, score_threshold=None, **options):
        spec = local_specs()[model]
        job_options = self._options(spec, classes, score_threshold)
        try:
            registry.load_models([spec])
        except ModelLoadError as exc:
            raise CommandError(str(exc)) from None

        failed = 0
        names = _folder_names(images)
        for path, name in tqdm(
            zip(images, names, strict=True),
            total=len(images),
            desc=model,
            unit="image",
            disable=len(images) < 2,
        ):
            try:
                with open(path, "rb") as fileobj:
                    decoded = decode_image(fileobj, settings.MAX_IMAGE_PIXELS)
            except (OSError, ImageError) as exc:
                failed += 1
                self.stderr.write(f"{path}: {getattr(exc, 'message', exc)}")
                continue
            rendered, inference_ms, _ = segment(decoded.rgb, model, job_options)
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in rendered.files.items():
                (folder / name).write_bytes(data)
            (folder / "result.json").write_text(json.dumps(rendered.summary, indent=2))
            self.stdout.write(f"{path} -> {folder} ({inference_ms} ms)")
        if failed:
            raise CommandError(f"{failed} of {len(images)} image(s) could not be read")

    def _options(self, spec, classes, score_threshold):
        job_options = {}
        if classes:
            wanted = [label.strip() for label in classes.split(",")]
            unknown = sorted(set(wanted) - set(spec.labels))
            if unknown:
                raise CommandError(f"{spec.name} has no class {', '.join(unknown)}")
            job_options["classes"] = wanted
        if score_threshold is not None:
            job_options["score_threshold"] = score_threshold
        return job_options


def _folder_names(paths):
    """A folder name per image, in order: its stem, or the stem and a number when an earlier
    image already took that name (`a.jpg`, `a.png`, `a-2.jpg` -> a, a-2, a-2-2)."""
    names, taken = [], set()
    for path in paths:
        name = stem = path.stem or "image"
        number = 1
        while name in taken:
            number += 1
            name = f"{stem}-{number}"
        taken.add(name)
        names.append(name)
    return names
