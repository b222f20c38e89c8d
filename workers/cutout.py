"""A cutout job's files: the refined matte, and the cutout (transparent) or the composite.

The steps, each in workers/effects.py: the model's answer as a coarse alpha, refined
against the full-resolution photo; the foreground's colours decontaminated at the edge;
then the background made transparent, blurred, or replaced by a colour or an image;
optionally everything cropped to the foreground. Outputs are at the photo's size (or the
crop's), unless the job caps their pixels (remove.bg's `size=preview`).
"""

import io
import math
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PIL import Image

from core.colours import parse_colour
from workers import effects, png, rendering
from workers.rendering import Rendered
from workers.runtimes import inference_threads

# A composite is a photo: JPEG, as the overlays are.
COMPOSITE_QUALITY = 90


def render_cutout(rgb, result, spec, options, background_image=None, seen=None):
    """Rendered files and summary of a cutout of `rgb` from the model's `result`, which is
    at the size of `seen`: the smaller copy the network saw (fitting.network_copy), or, if
    None, the photo itself."""
    photo, (height, width) = rgb, rgb.shape[:2]
    # 1. The foreground as alpha, following the photo's edges (refine brings it to full size).
    coarse = effects.coarse_alpha(spec.task, result, *(seen if seen is not None else rgb).shape[:2])
    alpha = effects.refine(rgb, coarse, max(spec.input.width, spec.input.height))

    over = alpha > 0.5  # the foreground: its share of the photo and its box, from one pass
    found = {"fraction": np.count_nonzero(over) / over.size, "box": effects.mask_box(over)}

    # 2. The crop, if asked for: everything after works on it alone.
    box = effects.grown(found["box"], _margin(options), height, width) if options.get("crop") else None
    if box is not None:
        x0, y0, x1, y1 = box
        rgb, alpha = rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
    rgb, alpha = _capped(rgb, alpha, options.get("max_pixels"))

    # 3. Colours without the old background's rim, then the new background. The matte
    #    meanwhile, on a second thread where the job has a second core: both only read the
    #    alpha, and numpy, OpenCV and zlib-ng let go of the GIL (about 20 ms at 12 MP).
    #    The network's copy is a reduced photo for the background's colours, uncropped, unscaled.
    with ThreadPoolExecutor(max_workers=1) as pool:
        matte = pool.submit(_matte, alpha) if inference_threads() > 1 else None
        foreground = effects.decontaminate(rgb, alpha, reduced=seen if rgb is photo else None)
        levels, matte_png = matte.result() if matte else _matte(alpha)
    background = _background(options, background_image)
    files = {"matte.png": matte_png}
    outputs = {"matte": "matte.png"}
    if background.kind == "transparent":
        # On the cores the worker gives a job's inference: its largest file, 48 MB at 12 MP.
        files["cutout.png"] = png.encode(_rgba(foreground, levels), threads=inference_threads())
        outputs["cutout"] = "cutout.png"
    else:
        shown = effects.composite(foreground, alpha, background, photo=rgb)
        files["composite.jpg"] = _jpeg(shown)
        outputs["composite"] = "composite.jpg"
    if "color" in options.get("extra_outputs", ()):  # remove.bg's zip: colours and alpha apart
        files["color.jpg"] = _jpeg(foreground)
        outputs["color"] = "color.jpg"
    return Rendered(
        files=files,
        outputs=outputs,
        summary=_summary(result, spec, (height, width), found, box, levels, background),
    )


def _matte(alpha):
    """(levels, their PNG) of an alpha."""
    levels = rendering.alpha_levels(alpha)
    return levels, png.encode(levels)


def _margin(options):
    margin = options.get("crop_margin") or {"value": 0, "unit": "px"}
    return margin["value"], margin["unit"]


def _capped(rgb, alpha, max_pixels):
    """Both scaled down to at most `max_pixels` (aspect kept), if they are larger."""
    height, width = alpha.shape
    if not max_pixels or height * width <= max_pixels:
        return rgb, alpha
    scale = math.sqrt(max_pixels / (height * width))
    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    alpha = np.asarray(Image.fromarray(alpha, "F").resize(size, Image.BILINEAR))
    return rgb, alpha


def _background(options, background_image):
    kind = options.get("background", "transparent")
    if kind == "transparent":
        return effects.Background()
    if kind == "blur":
        return effects.Background("blur", blur_radius=options.get("blur_radius", effects.DEFAULT_BLUR_RADIUS))
    if kind == "image":
        return effects.Background("image", image=background_image)
    return effects.Background("colour", colour=parse_colour(kind))


def _summary(result, spec, photo_shape, found, crop, levels, background):
    """Boxes as [x, y, width, height] in the photo's pixels, as instance summaries give them."""
    height, width = photo_shape
    return {
        "image_size": [width, height],
        "output_size": [int(levels.shape[1]), int(levels.shape[0])],
        "foreground_fraction": round(found["fraction"], 6),
        "foreground_box": _xywh(found["box"]),
        "crop": _xywh(crop),
        "classes": _classes_used(result, spec),
        "background": background.kind,
    }


def _xywh(box):
    return None if box is None else [box[0], box[1], box[2] - box[0], box[3] - box[1]]


def _classes_used(result, spec):
    """The labels whose pixels make the foreground."""
    if spec.task == "matte":
        return [spec.labels[0]]
    if spec.task == "semantic":
        present = np.nonzero(np.bincount(result.class_map.ravel(), minlength=len(spec.labels)))[0]
        return [spec.labels[i] for i in present if i != 0]
    return sorted({spec.labels[instance.class_id] for instance in result.instances})


def _rgba(foreground, levels):
    """The foreground with `levels` as alpha. Fully transparent pixels carry no colour: the
    removed background must not be recoverable from the file (and flat pixels compress)."""
    rgba = cv2.cvtColor(foreground, cv2.COLOR_RGB2RGBA)
    rgba[..., 3] = levels
    # A masked AND leaves the unmasked pixels zero: 20 ms at 12 MP, boolean indexing 100.
    return cv2.bitwise_and(rgba, rgba, mask=(levels != 0).view(np.uint8))


def _jpeg(rgb):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=COMPOSITE_QUALITY)
    return buffer.getvalue()
