"""Turn model results into images: pure numpy, Pillow and OpenCV, no Django, no model.

Masks are palette PNGs (exact class ids) at the original image size. Overlays are pictures
for people, drawn at the size of the photo they are given (a large photo's reduced copy:
see fitting.reduction) and kept as PIL images until encode_overlay.
"""

import colorsys
import io
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

OVERLAY_ALPHA = 0.5
# Pixels tinted at a time (see _tinted).
TILE_PIXELS = 1 << 20
# The overlay is a photo: as a JPEG it is 5 to 6 times smaller than as a PNG (what a phone
# downloads) and 20 times faster to encode (0.5 ms against 11 ms for a 451x300 photo).
OVERLAY_JPEG_QUALITY = 90
# libjpeg cannot hold a side longer than this; such an overlay is written as a PNG.
JPEG_MAX_SIDE = 65500


@dataclass
class Rendered:
    """What a job writes: its files, which of them is which output, and its summary."""

    files: dict  # file name -> encoded bytes
    outputs: dict  # kind -> file name
    summary: dict


@lru_cache(maxsize=1)
def voc_palette():
    """The PASCAL VOC colour map: class id i gets the colour built from i's bits."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


@lru_cache(maxsize=1)
def instance_palette():
    """Distinct, saturated colours for instance 1..255 (0, background, is black)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(1, 256):
        hue = (index * 0.618033988749895) % 1.0  # golden-ratio steps keep neighbours apart
        palette[index] = [round(c * 255) for c in colorsys.hsv_to_rgb(hue, 0.85, 0.95)]
    return palette


def _encode(image, **options):
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.getvalue()


def encode_overlay(image):
    """(file name, bytes): overlay.jpg, or overlay.png for a side too long for JPEG."""
    if max(image.size) > JPEG_MAX_SIDE:
        return "overlay.png", _encode(image, format="PNG", compress_level=1)
    return "overlay.jpg", _encode(image, format="JPEG", quality=OVERLAY_JPEG_QUALITY)


def _palette_image(index_map, palette):
    image = Image.fromarray(index_map.astype(np.uint8, copy=False))
    image.putpalette(palette.flatten().tolist())  # L becomes P, the pixel values kept
    return image


def palette_png(index_map, palette):
    """A palette PNG whose pixel values are the indices in `index_map` (uint8)."""
    # Level 3: a quarter of the default 6's time (1 ms against 4 for 512x512) for about a
    # fifth more bytes of a file that is a few kilobytes either way.
    return _encode(_palette_image(index_map, palette), format="PNG", compress_level=3)


def alpha_levels(probability):
    """A 0..1 probability map as 8-bit levels: probability times 255, rounded half to even,
    out-of-range values clipped. OpenCV's saturating conversion, in one pass: the same
    levels as numpy's rint(clip(p) * 255) in a third of the time (50 ms to 19 at 12 MP)."""
    return cv2.convertScaleAbs(cv2.max(probability.astype(np.float32, copy=False), 0.0), alpha=255.0)


def grey_png(levels):
    """An 8-bit greyscale (mode L) PNG of a uint8 map: a matte's alpha."""
    return _encode(Image.fromarray(levels, "L"), format="PNG", compress_level=3)


def pixel_counts(index_map):
    """{index: pixels} for every index present in a uint8 map (Pillow's histogram: a
    third of np.unique's time, which sorts the whole map)."""
    histogram = Image.fromarray(index_map.astype(np.uint8, copy=False)).histogram()
    return {index: count for index, count in enumerate(histogram) if count}


def semantic_overlay(rgb, class_map, labels, counts=None):
    """The photo with every non-background class tinted and a legend of the classes present
    (`counts`: pixel_counts(class_map), where the caller has it already). The class map may
    be larger than the photo (a reduced copy): it is drawn at the photo's size."""
    image = _tinted(rgb, _at_size(class_map, rgb), voc_palette())
    present = [c for c in (counts or pixel_counts(class_map)) if c != 0]
    entries = [(labels[c], tuple(int(v) for v in voc_palette()[c])) for c in present]
    _draw_legend(image, entries)
    return image


def instance_map(instances, height, width):
    """(H, W) uint8: pixel value = 1-based position in `instances`; higher scores on top."""
    index_map = np.zeros((height, width), dtype=np.uint8)
    # Lowest score first, so where masks overlap the best wins; on a tie, the one listed
    # first (the better-ranked) is painted last.
    by_score = sorted(range(len(instances)), key=lambda i: (instances[i].score, -i))
    for position in by_score:
        x0, y0, x1, y1 = instances[position].box
        region = index_map[y0:y1, x0:x1]
        region[instances[position].mask] = position + 1
    return index_map


def instance_overlay(rgb, instances, index_map, labels):
    """The photo with each instance's mask tinted, its box, label and score drawn; at the
    photo's size, where the index map and boxes are at a larger original's."""
    scale = rgb.shape[1] / index_map.shape[1]
    image = _tinted(rgb, _at_size(index_map, rgb), instance_palette())
    draw = ImageDraw.Draw(image)
    font = _font(image.size)
    line = max(2, min(image.size) // 300)
    for number, instance in enumerate(instances, start=1):
        colour = tuple(int(v) for v in instance_palette()[number])
        x0, y0, x1, y1 = (round(v * scale) for v in instance.box)
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)  # a box a pixel wide stays one
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=line)
        text = f"{labels[instance.class_id]} {instance.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        label_y = y0 - (bottom - top) - 4 if y0 >= (bottom - top) + 4 else y0
        draw.rectangle((x0, label_y, x0 + right - left + 4, label_y + bottom - top + 4), fill=colour)
        draw.text((x0 + 2 - left, label_y + 2 - top), text, fill=(0, 0, 0), font=font)
    return image


def _at_size(index_map, rgb):
    """An index map at the photo's size: resampled by nearest neighbour, ids kept."""
    height, width = rgb.shape[:2]
    if index_map.shape == (height, width):
        return index_map
    return np.asarray(
        Image.fromarray(index_map.astype(np.uint8, copy=False)).resize((width, height), Image.NEAREST)
    )


def _tinted(rgb, index_map, palette):
    """The photo, each pixel with a non-zero index mixed OVERLAY_ALPHA of the way to the
    index's colour. Pillow's blend and composite (several times faster than numpy here), a
    band of rows at a time: at full size their five intermediate images took ~800 MB for a
    40 MP photo; a band's take a few MB, beside the photo and the result."""
    height, width = index_map.shape
    image = Image.new("RGB", (width, height))
    rows = max(1, TILE_PIXELS // width)
    for top in range(0, height, rows):
        photo = Image.fromarray(rgb[top : top + rows])
        band = index_map[top : top + rows]
        colours = _palette_image(band, palette).convert("RGB")
        where = Image.fromarray(band.astype(np.uint8, copy=False)).point(lambda index: 255 if index else 0)
        image.paste(Image.composite(Image.blend(photo, colours, OVERLAY_ALPHA), photo, where), (0, top))
    return image


def _font(size):
    # Pillow's bundled font, scaled to the image so labels stay readable on large photos.
    return ImageFont.load_default(size=max(12, min(size) // 40))


def _draw_legend(image, entries):
    if not entries:
        return
    draw = ImageDraw.Draw(image, "RGBA")
    font = _font(image.size)
    ascent, descent = font.getmetrics()
    row = ascent + descent + 6
    swatch = ascent
    width = max(draw.textlength(label, font=font) for label, _ in entries) + swatch + 18
    draw.rectangle((4, 4, 4 + width, 4 + row * len(entries) + 4), fill=(0, 0, 0, 160))
    for number, (label, colour) in enumerate(entries):
        top = 8 + number * row
        draw.rectangle((10, top + 2, 10 + swatch, top + 2 + swatch), fill=colour)
        draw.text((16 + swatch, top), label, fill=(255, 255, 255), font=font)
