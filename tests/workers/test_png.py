"""workers/png.py: what it writes, read back by two independent decoders (Pillow's and
OpenCV's libpng), pixel for pixel, including the wrap-around of the SUB filter."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from workers import png

MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def noisy(shape, seed=0):
    """Random bytes (every SUB difference wraps somewhere) with a flat band of zeros, as a
    cutout's transparent rows are."""
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    pixels[: shape[0] // 3] = 0
    return pixels


@pytest.mark.parametrize("shape", [(37, 53), (37, 53, 3), (37, 53, 4), (1, 1), (1, 1, 4), (5, 1, 3), (1, 9)])
def test_pillow_reads_back_the_same_pixels(shape):
    pixels = noisy(shape)
    image = Image.open(io.BytesIO(png.encode(pixels)))
    image.load()  # checks every chunk's CRC and the zlib stream's Adler-32
    assert image.format == "PNG" and image.mode == MODES[1 if len(shape) == 2 else shape[2]]
    assert image.size == (shape[1], shape[0])
    assert (np.asarray(image) == pixels).all()


def test_libpng_reads_back_a_large_rgba_photo():
    pixels = noisy((1200, 1600, 4), seed=1)
    decoded = cv2.imdecode(np.frombuffer(png.encode(pixels), np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and decoded.shape == pixels.shape
    assert (cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA) == pixels).all()


def test_a_view_that_is_not_contiguous_is_written_as_it_looks():
    pixels = noisy((40, 60, 4))[::2, ::3]
    assert (np.asarray(Image.open(io.BytesIO(png.encode(pixels)))) == pixels).all()


def test_a_transparent_area_costs_next_to_nothing():
    assert len(png.encode(np.zeros((3024, 4032, 4), np.uint8))) < 100_000


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((4, 4), np.float32),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((0, 4), np.uint8),
        np.zeros(4, np.uint8),
    ],
    ids=["float", "two channels", "empty", "one dimension"],
)
def test_what_a_png_cannot_hold_is_refused(pixels):
    with pytest.raises(ValueError):
        png.encode(pixels)


@pytest.mark.parametrize("threads", [2, 3, 8])
def test_bands_deflated_on_threads_make_one_valid_stream(threads):
    pixels = noisy((900, 1200, 4), seed=threads)  # 4.3 MB: four bands, whatever the threads
    written = png.encode(pixels, threads=threads)
    assert len(png._bands(png._sub_filtered(pixels.reshape(900, -1), 4), threads)) > 1
    assert (np.asarray(Image.open(io.BytesIO(written))) == pixels).all()
    decoded = cv2.imdecode(np.frombuffer(written, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA) == pixels).all()
