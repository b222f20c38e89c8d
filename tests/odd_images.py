"""The bad-and-odd upload battery: each case's bytes and what the service must answer.

`expect` is an HTTP status for uploads that must be refused, or "ok" for uploads that
must become a succeeded job (with `size` = the (width, height) the job must report).
"""

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pillow_heif
from PIL import Image

from tests.conftest import gradient, image_bytes


@dataclass
class Case:
    name: str
    data: bytes
    filename: str
    expect: object  # int status or "ok"
    size: tuple = None


def _png_claiming_size(width, height):
    """A tiny PNG whose header claims width x height: a decompression bomb's signature."""
    data = bytearray(image_bytes(gradient(1, 1)))
    ihdr = 8 + 8  # signature, then chunk length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def _exif_rotated_jpeg():
    """64x48 pixels stored, EXIF orientation 6 (rotate 90° CW on display): shows as 48x64."""
    image = Image.fromarray(gradient(64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6
    return image_bytes(image, "JPEG", exif=exif)


def _animated_gif():
    frames = [Image.fromarray(gradient(40, 30)).convert("P"), Image.new("P", (40, 30), 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def _sixteen_bit_png():
    array = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    return image_bytes(Image.fromarray(array))  # uint16 arrays open as mode I;16


def turned_by_its_container(picture, fmt):
    """`picture` as an iPhone stores a photo taken on its side: the pixels as the sensor
    read them, a container box (HEIF/AVIF irot) and EXIF orientation 6 saying "turn 90°
    clockwise to show". Decoded and turned, it shows as `picture` does; raw, it would not.

    AVIF: Pillow writes irot from the EXIF orientation. HEIC: pillow-heif's from_pillow
    writes the box but turns the pixels it is given half a turn on the way (pillow-heif 1.8.1,
    libheif 1.23), so it is given the picture turned 180° (test_imageio checks the result).
    """
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = picture.transpose(Image.Transpose.ROTATE_90)  # the sensor's view: 90° back
    buffer = io.BytesIO()
    if fmt == "AVIF":
        stored.save(buffer, "AVIF", exif=exif.tobytes(), quality=90)
    else:
        given = picture.transpose(Image.Transpose.ROTATE_180)
        given.info["exif"] = exif.tobytes()
        pillow_heif.from_pillow(given).save(buffer, quality=90)
    return buffer.getvalue()


def cases():
    jpeg = image_bytes(gradient(), "JPEG")
    rgba = np.dstack([gradient(), np.full((48, 64), 100, np.uint8)])
    return [
        Case("empty file", b"", "empty.jpg", 400),
        Case("truncated jpeg", jpeg[: len(jpeg) // 2], "cut.jpg", 400),
        Case("text named .jpg", b"hello, I am not an image\n" * 10, "note.jpg", 400),
        Case("html named .png", b"<html><body>hi</body></html>", "page.png", 400),
        Case("jpeg header only", jpeg[:20], "header.jpg", 400),
        Case("decompression bomb png", _png_claiming_size(20000, 20000), "bomb.png", 413),
        Case("unsupported format (PPM)", image_bytes(gradient(), "PPM"), "img.ppm", 415),
        Case("unsupported format (ICO)", image_bytes(gradient(32, 32), "ICO"), "img.ico", 415),
        Case("1x1 png", image_bytes(gradient(1, 1)), "dot.png", "ok", (1, 1)),
        Case(
            "cmyk jpeg",
            image_bytes(Image.fromarray(gradient()).convert("CMYK"), "JPEG"),
            "cmyk.jpg",
            "ok",
            (64, 48),
        ),
        Case("16-bit png", _sixteen_bit_png(), "deep.png", "ok", (64, 48)),
        Case("animated gif", _animated_gif(), "anim.gif", "ok", (40, 30)),
        Case("rgba png", image_bytes(rgba), "alpha.png", "ok", (64, 48)),
        Case(
            "greyscale jpeg",
            image_bytes(Image.fromarray(gradient()).convert("L"), "JPEG"),
            "grey.jpg",
            "ok",
            (64, 48),
        ),
        Case("exif-rotated jpeg", _exif_rotated_jpeg(), "rotated.jpg", "ok", (48, 64)),
        Case(
            "palette png with transparency",
            image_bytes(Image.fromarray(gradient()).convert("P"), transparency=0),
            "pal.png",
            "ok",
            (64, 48),
        ),
        Case("1-bit png", image_bytes(Image.fromarray(gradient()).convert("1")), "bw.png", "ok", (64, 48)),
        Case("webp", image_bytes(gradient(), "WEBP"), "img.webp", "ok", (64, 48)),
        Case("bmp", image_bytes(gradient(), "BMP"), "img.bmp", "ok", (64, 48)),
        Case("tiff", image_bytes(gradient(), "TIFF"), "img.tif", "ok", (64, 48)),
        Case("very wide strip", image_bytes(gradient(2000, 2)), "strip.png", "ok", (2000, 2)),
        Case("jpeg named .png", jpeg, "mislabelled.png", "ok", (64, 48)),
        Case("heic", image_bytes(gradient(), "HEIF"), "IMG_0001.HEIC", "ok", (64, 48)),
        Case("avif", image_bytes(gradient(), "AVIF"), "img.avif", "ok", (64, 48)),
        Case(
            "heic turned by its container",
            turned_by_its_container(Image.fromarray(gradient()), "HEIF"),
            "IMG_0002.HEIC",
            "ok",
            (64, 48),
        ),
        Case(
            "avif turned by its container",
            turned_by_its_container(Image.fromarray(gradient()), "AVIF"),
            "turned.avif",
            "ok",
            (64, 48),
        ),
    ]
