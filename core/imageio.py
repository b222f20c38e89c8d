"""Check and decode untrusted uploads: RGB arrays (at their own size, or reduced when the
worker asks), orientation applied.

The web process checks an upload before a job exists (inspect_image: its header and at most
a reduced decode); the worker decodes the stored input (decode_image). Pure Pillow and
numpy: no inference runtime is imported here.
"""

import struct
import warnings
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import Image

# Formats we accept. Pillow can open many more (EPS runs Ghostscript, for one); an
# allow-list keeps the attack surface to well-fuzzed decoders. HEIF is an iPhone's HEIC
# (pillow-heif, registered here); AVIF is Pillow's own.
ALLOWED_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF"}
# HEIF's container turns the picture (irot/imir) and libheif applies that while decoding;
# pillow-heif then sets the EXIF orientation to 1, so it is never applied twice. Pillow's
# AVIF reader reports the container's turn as the EXIF orientation instead, applied below.
pillow_heif.register_heif_opener()

# Pillow's own bomb check only warns below 2x its limit; we enforce our limit ourselves
# before decoding, so its module-wide limit is lifted to avoid a second, different rule.
Image.MAX_IMAGE_PIXELS = None

# What Pillow raises on a malformed file. Its plugins also raise struct.error, TypeError and
# IndexError on broken headers (Image.open itself takes those to mean "not this format"),
# from load() on a TIFF whose strip offsets have the wrong type and from exif_transpose()
# on an EXIF block whose values do not fit their declared types: a 500 otherwise.
# pillow-heif and Pillow's AVIF reader raise RuntimeError for what libheif and libavif refuse
# ("Decoding of color planes failed", "Missing or empty image item").
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    TypeError,
    IndexError,
    RuntimeError,
)


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


# The HTTP status of each refusal, for a job the worker failed with one of these codes.
STATUS_BY_CODE = {error.code: error.status for error in (ImageError, UnsupportedFormat, ImageTooLarge)}


@dataclass(frozen=True)
class ImageInfo:
    """What the web process learns of an upload without decoding it at full size."""

    format: str
    width: int  # as displayed: EXIF orientation applied
    height: int


@dataclass
class DecodedImage:
    rgb: np.ndarray  # (height, width, 3) uint8, EXIF orientation applied; reduced, if asked
    format: str
    width: int  # the image's own size as displayed, whatever the reduction
    height: int


# The most pixels the web process decodes to check an upload: 16 MB at 4 bytes a pixel
# (RGBA, 32-bit grey). A baseline JPEG is checked through a 1/8-scale decode, which reads
# every block and keeps 1/64 of the pixels; a larger image of another kind is checked from
# its header (and a PNG's chunk checksums), and its pixels are checked by the worker, which
# fails the job with the same codes. This bounds the web process at a few MB per upload.
INSPECT_PIXELS = 4_000_000

# Pixels converted at a time (a tile of whole rows, or of one row's part): the only
# full-size buffers are Pillow's decoded image and ours; a tile's temporaries are ~8 MB.
TILE_PIXELS = 1 << 20

EXIF_ORIENTATION = 0x0112
WIDE_GREY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
WITH_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


def inspect_image(fileobj, max_pixels, decode_pixels=INSPECT_PIXELS):
    """Check an upload from its header, decoding at most a reduced copy; for the web process.

    Raises ImageError (400), UnsupportedFormat (415) or ImageTooLarge (413), as decode_image.
    """
    image, image_format = _open_checked(fileobj, max_pixels)
    width, height = image.size
    try:
        if _orientation(image, loaded=False) in (5, 6, 7, 8):  # the four that turn the picture a quarter
            width, height = height, width
        _check_pixels(image, decode_pixels)
    except (*DECODE_ERRORS, Image.DecompressionBombError) as exc:
        raise ImageError(f"the image could not be decoded: {exc}") from None
    except MemoryError:
        raise ImageTooLarge(f"image is {width}x{height}: too large to decode") from None
    return ImageInfo(image_format, width, height)


def decode_image(fileobj, max_pixels, reduction=None):
    """Open, check and fully decode an image file object into RGB; for the worker.

    `reduction(width, height) -> k` asks for the pixels at 1/k of the stored size (k a power
    of two); the size recorded stays the image's own. A JPEG is then decoded at that scale
    by libjpeg (1/2 to 1/8: a quarter to a sixtieth of the work), anything else decoded
    whole and box-reduced.

    Peak memory is Pillow's decoded image plus the RGB array (about 7 bytes a pixel for
    RGBA, 5 for 16-bit grey): 280 MB at the 40 MP limit, whatever the mode; a reduced
    non-JPEG adds its reduced copy (a quarter of the RGB array or less). A reduced JPEG is
    decoded at its reduced size.
    Raises ImageError (400), UnsupportedFormat (415) or ImageTooLarge (413).
    """
    image, image_format = _open_checked(fileobj, max_pixels)
    width, height = image.size
    factor = reduction(width, height) if reduction else 1
    try:
        if factor > 1 and image.format in ("JPEG", "MPO"):
            image.draft(image.mode, (max(1, width // factor), max(1, height // factor)))
        # Animated GIF/WebP/multi-page TIFF: the first frame is the image (seek(0) is the
        # state after open). Decoding here, not lazily, so truncation is caught now.
        image.load()
        orientation = _orientation(image)
        rgb = _reduced(_to_rgb(image), factor * image.width // width)
    except (*DECODE_ERRORS, Image.DecompressionBombError) as exc:
        raise ImageError(f"the image could not be decoded: {exc}") from None
    except MemoryError:
        # Within the pixel limit, Pillow still refuses a row too wide for its line buffer
        # (a 16-bit RGBA PNG over 33 M pixels wide) with MemoryError: the file's size, not
        # a fault of ours.
        raise ImageTooLarge(f"image is {width}x{height}: too large to decode") from None
    finally:
        image.close()  # Pillow's copy goes before the turned one is made
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(_oriented(rgb, orientation), image_format, width, height)


def _reduced(rgb, factor):
    """The RGB array box-reduced by `factor`: what is left to do after libjpeg's scaling."""
    if factor <= 1:
        return rgb
    return np.asarray(Image.fromarray(rgb).reduce(factor))


def _open_checked(fileobj, max_pixels):
    """The opened image and its format name, once its format and size are acceptable."""
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
    return image, image_format


def _open(fileobj):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Image.open(fileobj)
    except Image.UnidentifiedImageError:
        raise ImageError("the file is not an image Pillow can identify") from None
    except DECODE_ERRORS as exc:
        raise ImageError(f"the image header could not be read: {exc}") from None


def _orientation(image, loaded=True):
    if image.format == "PNG" and not loaded:
        # PNG's getexif() decodes every pixel to look for an eXIf chunk after them; one
        # before them (where writers put it) is already read.
        exif = Image.Exif()
        if "exif" in image.info:
            exif.load(image.info["exif"])
    else:
        exif = image.getexif()
    orientation = exif.get(EXIF_ORIENTATION, 1)
    return orientation if orientation in range(1, 9) else 1


def _check_pixels(image, budget):
    """Decode what fits in `budget` pixels, so that most broken files are refused now rather
    than becoming jobs that fail."""
    width, height = image.size
    if image.format in ("JPEG", "MPO") and not image.info.get("progressive"):
        # Baseline only: a progressive JPEG holds every coefficient of the image in memory
        # whatever the scale (about 3 bytes a pixel).
        image.draft(None, (-(-width // 8), -(-height // 8)))
        width, height = image.size
    if width * height <= budget:
        image.load()
    elif image.format == "PNG":
        image.verify()  # every chunk's CRC through IEND, without inflating the pixels


def _to_rgb(image):
    """Every Pillow mode as 8-bit RGB, converted a tile at a time into one array."""
    width, height = image.size
    rgb = np.empty((height, width, 3), dtype=np.uint8)
    convert = _tile_converter(image)
    columns = min(width, TILE_PIXELS)
    rows = max(1, TILE_PIXELS // columns)
    for top in range(0, height, rows):
        for left in range(0, width, columns):
            tile = image.crop((left, top, min(left + columns, width), min(top + rows, height)))
            rgb[top : top + tile.height, left : left + tile.width] = convert(tile)
    return rgb


def _tile_converter(image):
    if image.mode in WIDE_GREY:
        # 16-bit and 32-bit greyscale: scale the real range to 0..255 instead of clipping,
        # which would turn most 16-bit photos white. The range is the whole image's.
        low, high = (float(v) for v in image.getextrema())
        if not (np.isfinite(low) and np.isfinite(high)):  # a float TIFF with NaN or inf
            low, high = 0.0, 0.0
        scale = np.float32(255.0 / (high - low) if high > low else 0.0)

        def grey(tile):
            values = np.nan_to_num(np.asarray(tile, dtype=np.float32), nan=low, posinf=high, neginf=low)
            scaled = np.clip((values - np.float32(low)) * scale, 0, 255).astype(np.uint8)
            return scaled[:, :, None]  # broadcast to the three channels

        return grey
    if image.mode in WITH_ALPHA or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels have arbitrary colours underneath; composite on white so that
        # what the model sees is what a viewer shows: 255 - (255 - colour) * alpha / 255.
        def on_white(tile):
            rgba = np.asarray(tile.convert("RGBA"), dtype=np.uint16)
            alpha = rgba[:, :, 3:]
            return (255 - ((255 - rgba[:, :, :3]) * alpha + 127) // 255).astype(np.uint8)

        return on_white
    return lambda tile: np.asarray(tile.convert("RGB"), dtype=np.uint8)


def _oriented(rgb, orientation):
    """The array as displayed, for an EXIF orientation (1: as stored)."""
    turns = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    if orientation not in turns:
        return rgb
    return np.ascontiguousarray(turns[orientation](rgb))
