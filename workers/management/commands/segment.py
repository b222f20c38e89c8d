"""`manage.py segment IMAGE [IMAGE ...] --model M --out DIR`: the worker's pipeline in this
process, with no broker and no database: for batch runs and for trying a model.

Each image gets a folder of its own in DIR holding what the API serves for a job: the mask
(or instance map) PNG, the overlay JPEG, and result.json with the job's `result`; with
--cutout, the matte and the cutout or composite, as a task=cutout job writes them.
"""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.imageio import ImageError, decode_image
from core.repository import local_specs
from core.specs import CUTOUT
from jobs.lifecycle.cutouts import CutoutOptionError, cutout_options
from workers import registry
from workers.model import ModelLoadError
from workers.pipeline import segment

EFFECT_OPTIONS = ("background", "background_image", "blur_radius", "crop", "crop_margin")


class Command(BaseCommand):
    help = "Segment image files in this process (no broker or database) and write the results."
    requires_system_checks = []  # nothing here touches the database

    def add_arguments(self, parser):
        parser.add_argument("images", nargs="+", type=Path)
        parser.add_argument("--model", required=True, choices=sorted(local_specs()))
        parser.add_argument("--out", required=True, type=Path, help="folder for the results")
        parser.add_argument("--classes", help="comma-separated labels to keep (default: all)")
        parser.add_argument("--score-threshold", type=float, help="instance models: minimum score")
        effects = parser.add_argument_group(
            "cutouts (as task=cutout: matte.png, and cutout.png or composite.jpg)"
        )
        effects.add_argument(
            "--cutout", action="store_true", help="cut the foreground out (--classes: which)"
        )
        effects.add_argument(
            "--background", help="transparent (default), blur, or a colour (#rrggbb, a CSS name)"
        )
        effects.add_argument("--background-image", type=Path, help="an image to put behind the foreground")
        effects.add_argument("--blur-radius", type=float, help="with --background blur: px at 1000 px wide")
        effects.add_argument("--crop", action="store_true", help="crop to the foreground")
        effects.add_argument("--crop-margin", help="around the crop: pixels (20) or a percentage (10%%)")

    def handle(self, images, model, out, classes=None, score_threshold=None, **options):
        spec = local_specs()[model]
        job_options = self._options(spec, classes, score_threshold)
        task, background = self._cutout(spec, job_options, options)
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
            rendered, inference_ms, _ = segment(
                decoded.rgb, model, job_options, task=task, background_image=background
            )
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            for name, data in rendered.files.items():
                (folder / name).write_bytes(data)
            (folder / "result.json").write_text(json.dumps(rendered.summary, indent=2))
            self.stdout.write(f"{path} -> {folder} ({inference_ms} ms)")
        if failed:
            raise CommandError(f"{failed} of {len(images)} image(s) could not be read")

    def _cutout(self, spec, job_options, options):
        """(task, decoded background image) with the cutout's options added to job_options."""
        asked = [name for name in EFFECT_OPTIONS if options.get(name)]
        if not options["cutout"]:
            if asked:
                raise CommandError(f"--{asked[0].replace('_', '-')} goes with --cutout")
            return None, None
        background = None
        if options["background_image"]:
            try:
                with open(options["background_image"], "rb") as fileobj:
                    background = decode_image(fileobj, settings.MAX_IMAGE_PIXELS).rgb
            except (OSError, ImageError) as exc:
                raise CommandError(f"{options['background_image']}: {getattr(exc, 'message', exc)}") from None
        try:
            job_options.update(
                cutout_options(
                    spec,
                    foreground=job_options.pop("classes", ()),
                    background=options["background"] or "transparent",
                    blur_radius=options["blur_radius"],
                    crop=options["crop"],
                    crop_margin=options["crop_margin"],
                    background_image="background" if background is not None else None,
                )
            )
        except CutoutOptionError as exc:
            raise CommandError(f"--{exc.field.replace('_', '-')}: {exc.message}") from None
        return CUTOUT, background

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
