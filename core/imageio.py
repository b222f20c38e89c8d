"""Decode untrusted uploads into RGB arrays at their original size, orientation applied.

Used by the web process to reject bad uploads before a job exists, and by the worker to
decode the stored input. Pure Pillow and numpy: no inference runtime is imported here.
"""

import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

# Formats we accept. Pillow can open many more (EPS runs Ghostscript, for one); an
# allow-list keeps the attack surface to well-fuzzed decoders.
ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"}

# Pillow's own bomb check only warns below 2x its limit; we enforce our limit ourselves
# before decoding, so its module-wide limit is lifted to avoid a second, different rule.
Image.MAX_IMAGE_PIXELS = None

# What Pillow raises on a malformed file. Its plugins also raise struct.error, TypeError and
# IndexError on broken headers (Image.open itself takes those to mean "not this format"),
# from load() on a TIFF whose strip offsets have the wrong type and from exif_transpose()
# on an EXIF block whose values do not fit their declared types: a 500 otherwise.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, TypeError, IndexError)


class ImageError(Exception):
    """An upload that cannot be used; `code` and `status` feed the API's error shape."""

    code = "invalid_image"
    status = 400

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class UnsupportedFormat(ImageError):
    code = "unsupported_format"
    status = 415


class ImageTooLarge(ImageError):
    code = "image_too_large"
    status = 413


@dataclass
class DecodedImage:
    rgb: np.ndarray  # (height, width, 3) uint8, EXIF orientation applied
    format: str

    @property
    def width(self):
        return self.rgb.shape[1]

    @property
    def height(self):
        return self.rgb.shape[0]


def decode_image(fileobj, max_pixels):
    """Open, check and fully decode an image file object into RGB.

    Raises ImageError (400), UnsupportedFormat (415) or ImageTooLarge (413).
    """
    image = _open(fileobj)
    # An MPO (an iPhone portrait or depth photo) is a JPEG with more frames after the first.
    image_format = "JPEG" if image.format == "MPO" else image.format
    if image_format not in ALLOWED_FORMATS:
        raise UnsupportedFormat(
            f"{image_format} images are not supported; send one of {sorted(ALLOWED_FORMATS)}"
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    try:
        # Animated GIF/WebP/multi-page TIFF: the first frame is the image (seek(0) is the
        # state after open). Decoding here, not lazily, so truncation is caught now.
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
    except (*DECODE_ERRORS, Image.DecompressionBombError) as exc:
        raise ImageError(f"the image could not be decoded: {exc}") from None
    except MemoryError:
        # Within the pixel limit, Pillow still refuses a row too wide for its line buffer
        # (a 16-bit RGBA PNG over 33 M pixels wide) with MemoryError: the file's size, not
        # a fault of ours.
        raise ImageTooLarge(f"image is {width}x{height}: too large to decode") from None
    return DecodedImage(rgb=rgb, format=image_format)


def _open(fileobj):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(fileobj)
    except Image.UnidentifiedImageError:
        raise ImageError("the file is not an image Pillow can identify") from None
    except DECODE_ERRORS as exc:
        raise ImageError(f"the image header could not be read: {exc}") from None


def _to_rgb(image):
    """Normalise every Pillow mode to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and 32-bit greyscale: scale the real range to 0..255 instead of clipping,
        # which would turn most 16-bit photos white.
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        grey = ((array - low) * scale).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels have arbitrary colours underneath; composite on white so that
        # what the model sees is what a viewer shows.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
