import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from core.imageio import ImageError, ImageInfo, decode_image, inspect_image
from tests.conftest import gradient, image_bytes
from tests.odd_images import cases, turned_by_its_container
from tests.security.mutations import png

LIMIT = 40_000_000


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_each_odd_upload_decodes_to_rgb_or_fails_with_its_status(case):
    if case.expect == "ok":
        decoded = decode_image(io.BytesIO(case.data), LIMIT)
        assert (decoded.width, decoded.height) == case.size
        assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape[2] == 3
    else:
        with pytest.raises(ImageError) as raised:
            decode_image(io.BytesIO(case.data), LIMIT)
        assert raised.value.status == case.expect
        assert raised.value.message


def test_it_applies_exif_orientation_to_the_pixels():
    case = next(c for c in cases() if c.name == "exif-rotated jpeg")
    rgb = decode_image(io.BytesIO(case.data), LIMIT).rgb
    # Stored 64 wide with x growing left->right; rotated 90° clockwise, x now grows
    # top->bottom, so the red channel increases down the first column.
    assert rgb[-1, 0, 0] > rgb[0, 0, 0] + 100


def test_it_composites_transparency_on_white():
    transparent = np.zeros((8, 8, 4), dtype=np.uint8)  # black, fully transparent
    rgb = decode_image(io.BytesIO(image_bytes(transparent)), LIMIT).rgb
    assert (rgb == 255).all()


def test_it_spreads_sixteen_bit_range_instead_of_clipping():
    case = next(c for c in cases() if c.name == "16-bit png")
    rgb = decode_image(io.BytesIO(case.data), LIMIT).rgb
    assert rgb.min() == 0 and rgb.max() == 255


def test_pixel_limit_is_enforced_before_decoding():
    case = next(c for c in cases() if c.name == "1x1 png")
    decode_image(io.BytesIO(case.data), 1)
    big = next(c for c in cases() if c.name == "tiff")
    with pytest.raises(ImageError) as raised:
        decode_image(io.BytesIO(big.data), 64 * 48 - 1)
    assert raised.value.code == "image_too_large"


# --- inspect_image: what the web process does with an upload --------------------------------


@pytest.fixture
def loads(monkeypatch):
    """The (width, height) of every image Pillow decodes: how much the check looked at."""
    from PIL import ImageFile

    seen = []
    load = ImageFile.ImageFile.load

    def spy(image):
        seen.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return seen


@pytest.mark.parametrize("case", [c for c in cases() if c.expect == "ok"], ids=lambda c: c.name)
def test_inspect_reports_the_displayed_size_and_format_of_each_good_upload(case):
    info = inspect_image(io.BytesIO(case.data), LIMIT)
    decoded = decode_image(io.BytesIO(case.data), LIMIT)
    assert (info.width, info.height) == case.size
    assert info == ImageInfo(decoded.format, decoded.width, decoded.height)


@pytest.mark.parametrize("case", [c for c in cases() if c.expect != "ok"], ids=lambda c: c.name)
def test_inspect_refuses_each_small_bad_upload_as_the_decoder_does(case):
    with pytest.raises(ImageError) as raised:
        inspect_image(io.BytesIO(case.data), LIMIT)
    assert raised.value.status == case.expect


@pytest.mark.parametrize("colour_type, depth", [(6, 8), (0, 16)], ids=["RGBA", "16-bit grey"])
def test_a_40_mp_png_is_checked_from_its_header_and_checksums_without_decoding(loads, colour_type, depth):
    data = png(8000, 5000, colour_type, depth)
    assert inspect_image(io.BytesIO(data), LIMIT) == ImageInfo("PNG", 8000, 5000)
    assert loads == []
    # Cut short, its chunks no longer reach IEND: refused all the same.
    with pytest.raises(ImageError):
        inspect_image(io.BytesIO(data[: len(data) - 20]), LIMIT)


def test_a_large_baseline_jpeg_is_checked_through_an_eighth_scale_decode(loads):
    data = image_bytes(gradient(4000, 3000), "JPEG")
    assert inspect_image(io.BytesIO(data), LIMIT) == ImageInfo("JPEG", 4000, 3000)
    assert loads == [(500, 375)]
    with pytest.raises(ImageError):  # every block is still read: truncation shows
        inspect_image(io.BytesIO(data[: len(data) // 2]), LIMIT)


def test_a_large_progressive_jpeg_is_left_to_the_worker(loads):
    # Progressive: the decoder would hold every coefficient of the image, whatever the scale.
    data = image_bytes(gradient(4000, 3000), "JPEG", progressive=True)
    assert inspect_image(io.BytesIO(data), LIMIT) == ImageInfo("JPEG", 4000, 3000)
    assert loads == []


def test_a_small_upload_is_decoded_in_full_to_check_it(loads):
    data = image_bytes(gradient(2000, 2000), "WEBP")
    assert inspect_image(io.BytesIO(data), LIMIT) == ImageInfo("WEBP", 2000, 2000)
    assert loads == [(2000, 2000)]


@pytest.mark.parametrize("orientation, size", [(1, (64, 48)), (3, (64, 48)), (6, (48, 64)), (8, (48, 64))])
def test_inspect_reads_the_exif_orientation_without_decoding_a_png(loads, orientation, size):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = image_bytes(Image.fromarray(gradient(64, 48)), "PNG", exif=exif)
    assert inspect_image(io.BytesIO(data), LIMIT, decode_pixels=0) == ImageInfo("PNG", *size)
    assert loads == []


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_decoder_turns_the_pixels_as_pillow_would(orientation):
    array = (np.random.default_rng(orientation).random((30, 50, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = image_bytes(Image.fromarray(array), "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(decode_image(io.BytesIO(data), LIMIT).rgb, expected)


def test_the_decoder_converts_a_large_image_tile_by_tile_to_the_same_pixels():
    # More than one tile, in both directions: rows of tiles, and a row split in parts.
    for width, height in ((1500, 1200), (3_000_000, 1)):
        array = np.random.default_rng(width).integers(0, 256, (height, width, 4), dtype=np.uint8)
        data = image_bytes(array)
        expected = Image.alpha_composite(Image.new("RGBA", (width, height), "white"), Image.fromarray(array))
        got = decode_image(io.BytesIO(data), LIMIT).rgb
        assert np.abs(got.astype(int) - np.asarray(expected.convert("RGB"), dtype=int)).max() <= 1


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_photo_turned_by_its_container_decodes_as_it_is_shown(fmt):
    # An iPhone's HEIC (and an AVIF) on its side: irot in the container, EXIF orientation 6.
    shown = Image.fromarray(gradient(64, 48))
    data = turned_by_its_container(shown, fmt)
    assert b"irot" in data
    decoded = decode_image(io.BytesIO(data), LIMIT)
    assert inspect_image(io.BytesIO(data), LIMIT) == ImageInfo(fmt, 64, 48)
    # The pixels, not only the size: turned the wrong way, the gradients would run backwards.
    difference = np.abs(decoded.rgb.astype(int) - np.asarray(shown.convert("RGB"), dtype=int))
    assert difference.mean() < 8


# --- reduced decoding: a large photo's pixels at 1/k, its own size kept -----------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", [1, 6])
def test_a_reduced_decode_keeps_the_photos_size_and_looks_the_same(fmt, orientation):
    shown = gradient(1600, 1200)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = Image.fromarray(shown).rotate(90, expand=True) if orientation == 6 else Image.fromarray(shown)
    data = image_bytes(stored, fmt, exif=exif)
    asked = []

    def quarter(width, height):
        asked.append((width, height))
        return 4

    decoded = decode_image(io.BytesIO(data), LIMIT, quarter)
    assert asked == [stored.size]  # the stored size: the factor does not depend on the turn
    assert (decoded.width, decoded.height) == (1600, 1200)  # as displayed, not as decoded
    assert decoded.rgb.shape == (300, 400, 3)
    expected = np.asarray(Image.fromarray(shown).reduce(4), dtype=int)
    assert np.abs(decoded.rgb.astype(int) - expected).mean() < 4  # JPEG's loss, not a wrong turn


def test_a_reduced_jpeg_is_decoded_by_libjpeg_at_that_scale(monkeypatch):
    data = image_bytes(Image.fromarray(gradient(1600, 1200)), "JPEG")
    reductions = []
    monkeypatch.setattr(Image.Image, "reduce", lambda self, factor, box=None: reductions.append(factor))
    decoded = decode_image(io.BytesIO(data), LIMIT, lambda width, height: 8)
    assert decoded.rgb.shape == (150, 200, 3) and reductions == []  # nothing left to box-reduce
