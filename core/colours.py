"""Colours as clients name them: `#rrggbb`, `rrggbb` (remove.bg and rembg send hex without
the #), `#rgb`, or a CSS colour name. Parsed the same way by the API, which refuses a bad
one before a job exists, and by the worker, which paints it."""

from PIL import ImageColor


def parse_colour(text):
    """(r, g, b); ValueError for anything else."""
    text = text.strip()
    if len(text) in (3, 6) and all(c in "0123456789abcdefABCDEF" for c in text):
        text = "#" + text
    return ImageColor.getrgb(text)[:3]
