"""Turn model results into PNG files: pure numpy and Pillow, no Django, no model.

Every function returns encoded bytes at the original image size.
"""

import colorsys
import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

OVERLAY_ALPHA = 0.5
# The overlay is photo-like and compresses poorly whatever the level; level 1 is several
# times faster to encode than the default 6 for a few percent more bytes.
OVERLAY_PNG_LEVEL = 1


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


def encode_png(image, level=6):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def palette_png(index_map, palette):
    """A palette PNG whose pixel values are the indices in `index_map` (uint8)."""
    image = Image.fromarray(index_map.astype(np.uint8, copy=False), mode="P")
    image.putpalette(palette.flatten().tolist())
    return encode_png(image)


def semantic_overlay(rgb, class_map, labels):
    """The photo with every non-background class tinted and a legend of the classes present."""
    colours = voc_palette()[class_map]
    tinted = _blend(rgb, colours, class_map > 0)
    present = [int(c) for c in np.unique(class_map) if c != 0]
    entries = [(labels[c], tuple(int(v) for v in voc_palette()[c])) for c in present]
    image = Image.fromarray(tinted)
    _draw_legend(image, entries)
    return encode_png(image, OVERLAY_PNG_LEVEL)


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
    """The photo with each instance's mask tinted, its box, label and score drawn."""
    colours = instance_palette()[index_map]
    image = Image.fromarray(_blend(rgb, colours, index_map > 0))
    draw = ImageDraw.Draw(image)
    font = _font(image.size)
    line = max(2, min(image.size) // 300)
    for number, instance in enumerate(instances, start=1):
        colour = tuple(int(v) for v in instance_palette()[number])
        x0, y0, x1, y1 = instance.box
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=line)
        text = f"{labels[instance.class_id]} {instance.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        label_y = y0 - (bottom - top) - 4 if y0 >= (bottom - top) + 4 else y0
        draw.rectangle((x0, label_y, x0 + right - left + 4, label_y + bottom - top + 4), fill=colour)
        draw.text((x0 + 2 - left, label_y + 2 - top), text, fill=(0, 0, 0), font=font)
    return encode_png(image, OVERLAY_PNG_LEVEL)


def _blend(rgb, colours, where):
    out = rgb.copy()
    mixed = rgb[where].astype(np.float32) * (1 - OVERLAY_ALPHA) + colours[where] * OVERLAY_ALPHA
    out[where] = mixed.astype(np.uint8)
    return out


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
