import io

import numpy as np
import pytest

from core.imageio import ImageError, decode_image
from tests.odd_images import cases

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
    from tests.conftest import image_bytes

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
