"""A cutout job's options, checked and normalised once for every endpoint that makes one
(the REST API, remove.bg's and rembg's): what the worker's workers/cutout.py reads."""

import re

from core.colours import parse_colour
from core.specs import MATTE

BACKGROUNDS = ("transparent", "blur", "image")
MAX_BLUR_RADIUS = 200
_MARGIN = re.compile(r"^\s*(\d{1,5})\s*(px|%)?\s*$")


class CutoutOptionError(ValueError):
    """A bad option: `field` names it, the message says what it takes."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field, self.message = field, message


def cutout_options(
    spec,
    foreground=(),
    background="transparent",
    blur_radius=None,
    crop=False,
    crop_margin=None,
    background_image=None,
    extra_outputs=(),
    max_pixels=None,
):
    """The options dict of a cutout by `spec`'s model; raises CutoutOptionError.

    `foreground`: labels whose pixels are kept (a semantic model: default every class but
    background; an instance model: default every instance); `background`: transparent,
    blur, image (with `background_image`, the stored file's name) or a colour.
    """
    options = {"background": _background(background, background_image)}
    if foreground:
        options["classes"] = _foreground(spec, foreground)
    if blur_radius is not None:
        if options["background"] != "blur":
            raise CutoutOptionError("blur_radius", "blur_radius goes with background=blur")
        if not 0 <= blur_radius <= MAX_BLUR_RADIUS:
            raise CutoutOptionError("blur_radius", f"blur_radius must be from 0 to {MAX_BLUR_RADIUS}")
        options["blur_radius"] = float(blur_radius)
    if background_image:
        options["background_image"] = background_image
    if crop:
        options["crop"] = True
        options["crop_margin"] = parse_margin(crop_margin or "0")
    elif crop_margin:
        raise CutoutOptionError("crop_margin", "crop_margin goes with crop=true")
    if extra_outputs:
        options["extra_outputs"] = sorted(set(extra_outputs))
    if max_pixels:
        options["max_pixels"] = int(max_pixels)
    return options


def _background(background, background_image):
    if background_image:
        if background not in ("transparent", "image"):
            raise CutoutOptionError(
                "background", "a background image replaces the background: leave background out"
            )
        return "image"
    if background == "image":
        raise CutoutOptionError("background", "background=image needs a background_image")
    if background in BACKGROUNDS:
        return background
    try:
        red, green, blue = parse_colour(background)
    except ValueError:
        raise CutoutOptionError(
            "background", "background must be transparent, blur, a colour (#rrggbb or a CSS name) or an image"
        ) from None
    return f"#{red:02x}{green:02x}{blue:02x}"


def _foreground(spec, labels):
    if spec.task == MATTE:
        raise CutoutOptionError(
            "foreground", f"{spec.name} is a matte model: its foreground is {spec.labels[0]}"
        )
    unknown = [label for label in labels if label not in spec.labels]
    if unknown:
        raise CutoutOptionError(
            "foreground", f"{', '.join(map(repr, unknown))} not among {spec.name}'s labels"
        )
    if spec.task == "semantic" and spec.labels[0] in labels:
        raise CutoutOptionError("foreground", f"{spec.labels[0]!r} is what a cutout removes")
    return sorted(set(labels))


def parse_margin(text):
    """{"value", "unit"} of a margin: pixels (`20`, `20px`) or a percentage of the photo (`10%`)."""
    match = _MARGIN.match(str(text))
    if not match or (match.group(2) == "%" and int(match.group(1)) > 100):
        raise CutoutOptionError(
            "crop_margin", "crop_margin is pixels (20, 20px) or a percentage up to 100% (10%)"
        )
    return {"value": int(match.group(1)), "unit": match.group(2) or "px"}
