"""The real models on real photos, in process: what each returns at the original size."""

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tests.conftest import eval_photo
from workers import fitting
from workers.results import MIN_SCORE


def rgb_of(relative):
    return np.asarray(Image.open(eval_photo(relative)).convert("RGB"))


def test_deeplab_finds_the_astronaut_at_the_original_size(engines):
    rgb = rgb_of("photos/astronaut.jpg")
    class_map = engines.get_model("deeplabv3_mnv2_pascal").infer(rgb, {}).class_map
    assert class_map.shape == rgb.shape[:2]
    assert (class_map == 15).mean() >= 0.30


def test_deeplab_keeps_only_the_requested_classes(engines):
    rgb = rgb_of("photos/astronaut.jpg")
    class_map = engines.get_model("deeplabv3_mnv2_pascal").infer(rgb, {"class_ids": [5]}).class_map
    assert set(np.unique(class_map)) <= {0, 5}


def test_deeplab_handles_a_non_square_photo(engines):
    rgb = rgb_of("max/stc.jpg")
    class_map = engines.get_model("deeplabv3_mnv2_pascal").infer(rgb, {}).class_map
    assert class_map.shape == rgb.shape[:2]
    assert (class_map == 15).mean() > 0.1  # the people in the middle
    assert (class_map[:60, :120] == 0).all()  # the top-left corner is background


def test_yolo_finds_the_cat_with_a_mask_inside_its_box(engines):
    rgb = rgb_of("photos/chelsea.jpg")
    instances = engines.get_model("yolov8n_seg_coco").infer(rgb, {}).instances
    cat = instances[0]
    assert cat.class_id == 15 and cat.score >= 0.5  # COCO_80[15] == "cat"
    x0, y0, x1, y1 = cat.box
    assert cat.mask.shape == (y1 - y0, x1 - x0)
    assert cat.mask.sum() > 0.5 * rgb.shape[0] * rgb.shape[1]


def test_yolo_respects_threshold_and_classes(engines):
    rgb = rgb_of("photos/coffee.jpg")
    engine = engines.get_model("yolov8n_seg_coco")
    labels = engine.spec.labels
    everything = engine.infer(rgb, {"score_threshold": 0.25}).instances
    assert {"cup", "dining table"} <= {labels[i.class_id] for i in everything}
    cups = engine.infer(rgb, {"score_threshold": 0.25, "class_ids": [labels.index("cup")]}).instances
    assert [labels[i.class_id] for i in cups] == ["cup"]
    assert all(i.score >= 0.9 for i in engine.infer(rgb, {"score_threshold": 0.9}).instances)


TINY_AND_EXTREME = pytest.mark.parametrize(
    "shape", [(1, 1, 3), (2, 2000, 3), (900, 3, 3)], ids=["1x1", "2x2000-tiled", "900x3-tall"]
)


@TINY_AND_EXTREME
def test_the_semantic_engine_maps_a_tiny_or_extreme_image_back_to_its_own_size(engines, shape):
    class_map = engines.get_model("deeplabv3_mnv2_pascal").infer(np.full(shape, 90, np.uint8), {}).class_map
    assert class_map.shape == shape[:2] and class_map.dtype == np.uint8
    assert (class_map == 0).all()  # a flat grey image holds nothing but background


@TINY_AND_EXTREME
def test_the_instance_engine_finds_nothing_in_a_tiny_or_extreme_flat_image(engines, shape):
    # At the lowest threshold a job can ask for, so that a weak candidate would show too.
    image = np.full(shape, 90, np.uint8)
    assert engines.get_model("yolov8n_seg_coco").infer(image, {"score_threshold": MIN_SCORE}).instances == []


@pytest.mark.parametrize(
    "photo, crop, class_id",
    [
        # The cat's lower half, 3:1: its box reaches above the photo's top edge.
        ("photos/chelsea.jpg", np.s_[150:], 15),  # COCO_80[15] == "cat"
        # The astronaut's left third, 1:3: his box reaches below the bottom edge.
        ("photos/astronaut.jpg", np.s_[:, :170], 0),  # COCO_80[0] == "person"
    ],
    ids=["wide", "tall"],
)
def test_the_instance_engine_keeps_every_box_and_mask_of_a_long_photo_inside_it(
    engines, photo, crop, class_id
):
    # Letterboxed into a strip of the input, the network's boxes spill into the padding;
    # mapped back, each must lie inside the photo with its mask the box's size.
    rgb = np.ascontiguousarray(rgb_of(photo)[crop])
    height, width = rgb.shape[:2]
    instances = engines.get_model("yolov8n_seg_coco").infer(rgb, {"score_threshold": MIN_SCORE}).instances
    assert instances and instances[0].class_id == class_id
    for instance in instances:
        x0, y0, x1, y1 = instance.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, instance.box
        assert instance.mask.shape == (y1 - y0, x1 - x0)


@pytest.mark.parametrize("name", ["stc.jpg", "stc.png"])
def test_deeplab_finds_the_people_and_monitors_of_the_wide_office_photo(engines, name):
    # MAX's own test pixels, in its 513x256 output: background, a person, a monitor.
    rgb = np.asarray(Image.open(eval_photo(f"max/{name}")).convert("RGB"))
    class_map = engines.get_model("deeplabv3_mnv2_pascal").infer(rgb, {}).class_map
    small = np.asarray(Image.fromarray(class_map).resize((513, 256), Image.NEAREST))
    assert (small[0, 0], small[130, 170], small[200, 500]) == (0, 15, 20)
    assert (class_map == 20).mean() > 0.01 and (class_map == 15).mean() > 0.15


def tile_counter():
    """A stand-in for one pass of the network: each tile answers with its own number."""
    seen = []

    def tile_index(rgb):
        seen.append(rgb.shape[:2])
        return np.full(rgb.shape[:2], len(seen), dtype=np.uint8)

    return seen, tile_index


def test_tiles_split_their_overlaps_at_the_midpoints_between_centres():
    seen, tile_index = tile_counter()
    wide = fitting.tiled(np.zeros((100, 250, 3), np.uint8), tile_index)
    assert seen == [(100, 100)] * 3
    # Tiles start at 0, 75, 150; their centres 50, 125, 200 meet at 87.5 and 162.5.
    assert [int(wide[0, x]) for x in (0, 87, 88, 162, 163, 249)] == [1, 1, 2, 2, 3, 3]
    seen.clear()
    assert fitting.tiled(np.zeros((100, 140, 3), np.uint8), tile_index).max() == 1 and len(seen) == 1
    seen.clear()
    fitting.tiled(np.zeros((2, 2000, 3), np.uint8), tile_index)  # a strip: at most four tiles
    assert len(seen) == 4 and seen[0] == (2, 500)


def test_tiles_run_a_tall_image_upright_along_its_rows():
    seen, tile_index = tile_counter()
    tall = fitting.tiled(np.zeros((250, 100, 3), np.uint8), tile_index)
    assert seen == [(100, 100)] * 3  # upright tiles, never transposed
    assert [int(tall[y, 0]) for y in (0, 87, 88, 162, 163, 249)] == [1, 1, 2, 2, 3, 3]
    seen.clear()
    fitting.tiled(np.zeros((514, 513, 3), np.uint8), tile_index)  # a portrait that needs no tiles
    assert seen == [(514, 513)]


def test_the_selfie_matte_covers_the_astronaut_with_a_soft_probability(engines):
    rgb = rgb_of("photos/astronaut.jpg")
    alpha = engines.get_model("selfie_segmentation_mediapipe").infer(rgb, {}).alpha
    assert alpha.shape == rgb.shape[:2] and alpha.dtype == np.float32
    assert 0.45 < (alpha > 0.5).mean() < 0.65  # MANIFEST: 0.546 of the pixels
    assert alpha[:40, :40].mean() < 0.2 < 0.8 < alpha[256:, 200:300].mean()  # corner out, body in
    assert ((alpha > 0.05) & (alpha < 0.95)).any()  # soft at the edges, not a hard mask


def test_the_small_deeplab_finds_the_astronaut_too(engines):
    rgb = rgb_of("photos/astronaut.jpg")
    class_map = engines.get_model("deeplabv3_mnv2_dm05_pascal").infer(rgb, {}).class_map
    assert class_map.shape == rgb.shape[:2] and 0.35 < (class_map == 15).mean() < 0.5  # MANIFEST: 0.433


# --- fitting.reduction: how far a large photo may be reduced before inference -----------------


def spec_input(fit, side=513):
    return SimpleNamespace(width=side, height=side, fit=fit)


@pytest.mark.parametrize(
    "fit, size, factor",
    [
        ("letterbox", (4032, 3024), 2),  # a phone's 12 MP: 2016 long, under 2048
        ("letterbox", (8000, 6000), 4),
        ("letterbox", (2048, 1536), 1),  # already within the bound
        ("letterbox", (66000, 16), 64),  # the long side is what the network sees
        ("tiles", (66000, 16), 1),  # each tile's short side would fall below the input
        ("tiles", (8000, 2000), 2),  # 1000 short: still at least 513 a tile
        ("tiles", (4032, 3024), 2),
    ],
)
def test_a_photo_is_reduced_to_the_bound_but_never_below_the_networks_input(fit, size, factor):
    assert fitting.reduction(spec_input(fit), 2048)(*size) == factor


def test_a_network_larger_than_the_bound_keeps_its_own_resolution():
    assert fitting.reduction(spec_input("letterbox", side=1024), 512)(4096, 3072) == 4  # 1024 long


def test_a_cutouts_network_copy_is_about_twice_the_networks_input():
    photo = np.zeros((3024, 4032, 3), dtype=np.uint8)
    assert fitting.network_copy(photo, spec_input("letterbox")).shape == (756, 1008, 3)
    small = np.zeros((512, 512, 3), dtype=np.uint8)
    assert fitting.network_copy(small, spec_input("letterbox")) is small
    assert fitting.network_copy(photo, spec_input("native")) is photo  # the runtime sizes it
