import io

import numpy as np
from PIL import Image

from tests.conftest import COCO_80, PASCAL_VOC, eval_photo, gradient
from workers.rendering import (
    alpha_levels,
    encode_overlay,
    instance_map,
    instance_overlay,
    palette_png,
    semantic_overlay,
    voc_palette,
)
from workers.results import Instance

PERSON, CAT, DOG = 15, 8, 12


def decoded(png):
    image = Image.open(io.BytesIO(png))
    return image, np.asarray(image)


def class_map_with(height, width, *regions):
    """A background class map with (class_id, (y0, y1, x0, x1)) rectangles painted in."""
    class_map = np.zeros((height, width), dtype=np.uint8)
    for class_id, (y0, y1, x0, x1) in regions:
        class_map[y0:y1, x0:x1] = class_id
    return class_map


def test_palette_png_stores_class_ids_as_pixel_values():
    class_map = np.arange(21, dtype=np.uint8).repeat(3).reshape(7, 9)

    image, pixels = decoded(palette_png(class_map, voc_palette()))

    assert image.format == "PNG" and image.mode == "P"
    assert pixels.shape == (7, 9)
    assert np.array_equal(pixels, class_map)


def test_palette_png_carries_the_pascal_voc_colours():
    image, _ = decoded(palette_png(np.zeros((2, 2), dtype=np.uint8), voc_palette()))

    palette = np.asarray(image.getpalette(), dtype=np.uint8).reshape(-1, 3)
    assert tuple(palette[0]) == (0, 0, 0)
    assert tuple(palette[PERSON]) == (192, 128, 128)
    assert tuple(palette[CAT]) == (64, 0, 0)
    assert tuple(palette[1]) == (128, 0, 0)  # aeroplane: the first colour of the VOC map


def test_semantic_overlay_keeps_the_original_size():
    rgb = gradient(width=97, height=61)

    image = semantic_overlay(rgb, class_map_with(61, 97, (PERSON, (30, 50, 60, 90))), PASCAL_VOC)

    assert image.size == (97, 61)
    assert np.asarray(image).shape == (61, 97, 3)


def test_semantic_overlay_leaves_background_untouched_away_from_the_legend():
    rgb = gradient(width=240, height=180)
    class_map = class_map_with(180, 240, (PERSON, (120, 170, 160, 230)))

    pixels = np.asarray(semantic_overlay(rgb, class_map, PASCAL_VOC))

    # The bottom-left quarter is background and far from the legend in the top-left corner.
    assert np.array_equal(pixels[120:, :120], rgb[120:, :120])
    background = class_map == 0
    background[:100, :150] = False  # the legend's corner
    assert np.array_equal(pixels[background], rgb[background])


def test_semantic_overlay_tints_class_pixels_halfway_to_the_class_colour():
    rgb = np.full((120, 160, 3), 100, dtype=np.uint8)
    class_map = class_map_with(120, 160, (PERSON, (80, 110, 100, 150)), (CAT, (80, 110, 10, 40)))

    pixels = np.asarray(semantic_overlay(rgb, class_map, PASCAL_VOC))

    # Half the photo's 100 plus half of person (192, 128, 128) and cat (64, 0, 0).
    assert (pixels[class_map == PERSON] == (146, 114, 114)).all()
    assert (pixels[class_map == CAT] == (82, 50, 50)).all()


def test_semantic_overlay_draws_no_legend_when_only_background_is_present():
    rgb = gradient(width=160, height=120)

    pixels = np.asarray(semantic_overlay(rgb, np.zeros((120, 160), dtype=np.uint8), PASCAL_VOC))

    assert np.array_equal(pixels, rgb)


def test_semantic_overlay_draws_a_legend_in_the_top_left_corner_when_a_class_is_present():
    rgb = gradient(width=160, height=120)
    class_map = class_map_with(120, 160, (PERSON, (90, 120, 130, 160)))

    pixels = np.asarray(semantic_overlay(rgb, class_map, PASCAL_VOC))

    corner = (slice(4, 20), slice(4, 20))
    assert (class_map[corner] == 0).all()
    assert not np.array_equal(pixels[corner], rgb[corner])


def test_the_legend_grows_by_a_row_for_each_class_present():
    rgb = np.full((200, 200, 3), 200, dtype=np.uint8)
    one = class_map_with(200, 200, (PERSON, (150, 200, 150, 200)))
    two = class_map_with(200, 200, (PERSON, (150, 200, 150, 200)), (DOG, (150, 200, 100, 140)))

    def legend_rows(class_map):
        pixels = np.asarray(semantic_overlay(rgb, class_map, PASCAL_VOC))
        return int((pixels[:, 6] != rgb[:, 6]).any(axis=1).sum())

    assert legend_rows(two) > legend_rows(one) > 0


def test_overlays_are_stored_as_jpegs_close_to_the_rendered_image():
    rgb = np.asarray(Image.open(eval_photo("photos/chelsea.jpg")).convert("RGB"))
    class_map = class_map_with(*rgb.shape[:2], (CAT, (50, 250, 100, 350)))
    image = semantic_overlay(rgb, class_map, PASCAL_VOC)

    name, data = encode_overlay(image)
    stored, pixels = decoded(data)

    assert name == "overlay.jpg" and stored.format == "JPEG" and stored.size == image.size
    error = np.abs(pixels.astype(int) - np.asarray(image, dtype=int))
    assert error.mean() < 2 and np.percentile(error, 99) < 16


def test_an_overlay_too_long_for_jpeg_is_stored_as_a_png():
    rgb = gradient(width=65501, height=3)  # libjpeg stops at 65500 a side
    image = semantic_overlay(rgb, class_map_with(3, 65501, (CAT, (0, 3, 0, 100))), PASCAL_VOC)

    name, data = encode_overlay(image)
    stored, pixels = decoded(data)

    assert name == "overlay.png" and stored.format == "PNG"
    assert np.array_equal(pixels, np.asarray(image))


def test_instance_map_puts_the_higher_score_on_top_where_masks_overlap():
    best = Instance(class_id=0, score=0.9, box=(2, 2, 8, 8), mask=np.ones((6, 6), dtype=bool))
    second = Instance(class_id=16, score=0.6, box=(5, 5, 12, 10), mask=np.ones((5, 7), dtype=bool))

    index_map = instance_map([best, second], height=12, width=14)

    expected = np.zeros((12, 14), dtype=np.uint8)
    expected[5:10, 5:12] = 2
    expected[2:8, 2:8] = 1
    assert index_map.dtype == np.uint8
    assert np.array_equal(index_map, expected)


def test_instance_map_follows_the_mask_not_the_box():
    ring = np.ones((6, 6), dtype=bool)
    ring[2:4, 2:4] = False  # a hole in the best instance's mask
    best = Instance(class_id=0, score=0.9, box=(0, 0, 6, 6), mask=ring)
    below = Instance(class_id=2, score=0.7, box=(0, 0, 6, 6), mask=np.ones((6, 6), dtype=bool))

    index_map = instance_map([best, below], height=8, width=8)

    assert (index_map[2:4, 2:4] == 2).all()
    assert (index_map[:6, :6][ring] == 1).all()
    assert (index_map[6:, :] == 0).all() and (index_map[:, 6:] == 0).all()


def test_instance_overlay_is_an_rgb_image_of_the_original_size():
    rgb = gradient(width=150, height=90)
    person = Instance(class_id=0, score=0.87, box=(40, 30, 100, 80), mask=np.ones((50, 60), dtype=bool))
    index_map = instance_map([person], height=90, width=150)

    image = instance_overlay(rgb, [person], index_map, COCO_80)
    pixels = np.asarray(image)

    assert image.mode == "RGB" and image.size == (150, 90)
    assert not np.array_equal(pixels[50:70, 50:90], rgb[50:70, 50:90])  # the mask is tinted
    assert np.array_equal(pixels[:, 120:], rgb[:, 120:])  # nothing drawn right of the box


def test_instance_overlay_with_no_instances_is_the_photo():
    rgb = gradient(width=40, height=30)

    pixels = np.asarray(instance_overlay(rgb, [], np.zeros((30, 40), dtype=np.uint8), COCO_80))

    assert np.array_equal(pixels, rgb)


def test_instance_map_gives_a_tie_to_the_instance_listed_first():
    from workers.rendering import instance_map
    from workers.results import Instance

    full = np.ones((4, 4), dtype=bool)
    tied = [Instance(1, 0.9, (0, 0, 4, 4), full), Instance(2, 0.9, (0, 0, 4, 4), full)]
    assert (instance_map(tied, 4, 4) == 1).all()


def test_alpha_levels_round_and_clip_as_the_arithmetic_says():
    values = np.array([-0.5, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 254.5 / 255, 1.0, 7.0], dtype=np.float32)
    assert alpha_levels(values[None]).tolist() == [[0, 0, 0, 2, 128, 254, 255, 255]]  # half to even
    noise = np.random.default_rng(1).random((300, 400), dtype=np.float32) * 1.4 - 0.2
    expected = np.rint(np.clip(noise, 0.0, 1.0) * 255.0).astype(np.uint8)
    assert np.array_equal(alpha_levels(noise), expected)
    assert alpha_levels(noise.astype(np.float64)).dtype == np.uint8
