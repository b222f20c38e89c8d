"""Fit a photo to a network's input as its spec says, and map dense outputs back.

A spec's `input` table says how: the size, the fit (letterbox, stretch, tiles), the
padding, where the photo sits, the dtype, the value range, the channel order and the
layout. `fit()` makes the tensor and a Placement; `unfit()` takes a per-pixel map at the
network's resolution back to the photo's own size.
"""

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

# An image longer than this many times its width (or the reverse) runs in tiles.
TILE_ASPECT = 1.5
MAX_TILES = 4


@dataclass(frozen=True)
class Placement:
    """Where the photo sits in the network's input, in input pixels."""

    left: int
    top: int
    width: int
    height: int
    input_width: int
    input_height: int


def fit(rgb, spec_input):
    """(tensor of one image, Placement) for an (H, W, 3) uint8 photo."""
    height, width = rgb.shape[:2]
    size = (spec_input.width, spec_input.height)
    if spec_input.fit == "stretch":
        new_w, new_h, left, top = *size, 0, 0
    else:
        scale = min(size[0] / width, size[1] / height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        left, top = (
            (0, 0) if spec_input.anchor == "top-left" else ((size[0] - new_w) // 2, (size[1] - new_h) // 2)
        )

    resized = np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.BILINEAR))
    if spec_input.channels == "bgr":
        resized = resized[..., ::-1]
    canvas_dtype = np.uint8 if spec_input.dtype == "uint8" else np.float32
    canvas = np.full((size[1], size[0], 3), spec_input.pad, dtype=canvas_dtype)
    canvas[top : top + new_h, left : left + new_w] = resized

    # Pixels 0..255 to the spec's value range; a uint8 input takes them as they are.
    if spec_input.dtype == "float32":
        low, high = spec_input.range
        canvas = canvas * np.float32((high - low) / 255.0) + np.float32(low)
    if spec_input.layout == "nchw":
        canvas = canvas.transpose(2, 0, 1)
    placement = Placement(left, top, new_w, new_h, size[0], size[1])
    return np.ascontiguousarray(canvas[None]), placement


def unfit(values, placement, width, height, exact):
    """A per-pixel map over the network's input (any resolution) at the photo's size.

    `exact` maps (class ids) resample by nearest neighbour, which keeps every id as it is;
    probabilities resample bilinearly. Only the region the photo filled is resampled.
    """
    map_h, map_w = values.shape
    ratio_x, ratio_y = map_w / placement.input_width, map_h / placement.input_height
    region = (
        placement.left * ratio_x,
        placement.top * ratio_y,
        (placement.left + placement.width) * ratio_x,
        (placement.top + placement.height) * ratio_y,
    )
    if exact:
        image = Image.fromarray(values.astype(np.uint8), "L")
        return np.asarray(image.resize((width, height), Image.NEAREST, box=region))
    image = Image.fromarray(values.astype(np.float32), "F")
    return np.asarray(image.resize((width, height), Image.BILINEAR, box=region))


def resized(values, width, height, exact):
    """A per-pixel map at the photo's size, from one made at a reduced copy's size."""
    if values.shape == (height, width):
        return values
    if exact:
        return np.asarray(
            Image.fromarray(values.astype(np.uint8), "L").resize((width, height), Image.NEAREST)
        )
    return np.asarray(Image.fromarray(values.astype(np.float32), "F").resize((width, height), Image.BILINEAR))


def reduction(spec_input, max_side):
    """`(width, height) -> k`: the power of two to reduce a photo by before inference, so
    that its long side is at most `max_side` while the network still gets at least its
    own input's resolution (each tile's, for a tiled model). What is drawn for people
    (overlays) is drawn at that size; what a client computes with (masks) stays full size.
    """
    needed = max(spec_input.width, spec_input.height)

    def factor(width, height):
        long, short = max(width, height), min(width, height)
        least = short if spec_input.fit == "tiles" else long
        k = 1
        while long / k > max_side and least / (2 * k) >= needed:
            k *= 2
        return k

    return factor


def network_copy(rgb, spec_input):
    """A large photo box-reduced to about twice the network's input, for a job that needs
    the photo's own pixels too (a cutout); the photo itself where that is no smaller, or
    where the runtime sizes the photo itself. The network's answer is that coarse anyway."""
    if spec_input.fit == "native":
        return rgb
    factor = network_reduction(spec_input)(rgb.shape[1], rgb.shape[0])
    return rgb if factor == 1 else np.asarray(Image.fromarray(rgb).reduce(factor))


def network_reduction(spec_input):
    """network_copy's `(width, height) -> k`, for a caller that decodes the copy itself."""
    return reduction(spec_input, 2 * max(spec_input.width, spec_input.height))


def is_elongated(rgb):
    """Whether one side is more than TILE_ASPECT times the other: run as tiles, not whole."""
    height, width = rgb.shape[:2]
    return max(height, width) > TILE_ASPECT * min(height, width)


def tiled(rgb, run_whole):
    """`run_whole(tile) -> map at the tile's size` over overlapping tiles along the long side.

    Letterboxed whole, a 2:1 photo fills half the input and small objects vanish (the
    monitors of MAX's stc.jpg test image). Tiles are square up to a 4:1 image and longer
    past it (at most MAX_TILES). Each pixel takes its value from the tile whose centre is
    nearest, so the overlaps split at their midpoints. Tiles are cut from the image as it
    is, never rotated: the models were trained upright.
    """
    if not is_elongated(rgb):
        return run_whole(rgb)
    height, width = rgb.shape[:2]
    along_x = width >= height
    long, short = (width, height) if along_x else (height, width)
    count = min(MAX_TILES, math.ceil(long / short))
    length = max(short, math.ceil(long / count))
    starts = [round(i * (long - length) / (count - 1)) for i in range(count)]
    centres = [start + length / 2 for start in starts]
    bounds = [0] + [math.ceil((a + b) / 2) for a, b in zip(centres, centres[1:], strict=False)] + [long]

    def span(a, b):  # rows or columns a..b of the long side
        return (slice(None), slice(a, b)) if along_x else (slice(a, b),)

    result = None
    for start, first, end in zip(starts, bounds, bounds[1:], strict=False):
        tile = run_whole(rgb[span(start, start + length)])
        if result is None:
            result = np.empty((height, width), dtype=tile.dtype)
        result[span(first, end)] = tile[span(first - start, end - start)]
    return result
