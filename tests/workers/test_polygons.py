"""Instance outlines as polygons: exact before simplification, holes kept, in the photo's
pixel corners, within the job's point budget; on synthetic masks and on the real model."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from tests.conftest import COCO_80, eval_photo
from tests.workers.helpers import filled
from workers import polygons
from workers.polygons import MAX_POLYGON_POINTS, instance_polygons
from workers.results import Instance
from workers.summary import instance_summary


def decoded(item):
    return coco_mask.decode({"size": item["rle"]["size"], "counts": item["rle"]["counts"].encode("ascii")})


def instance_of(mask, x0=0, y0=0):
    """An instance whose box is the mask's own, placed at (x0, y0) of the photo."""
    height, width = mask.shape
    return Instance(class_id=0, score=0.9, box=(x0, y0, x0 + width, y0 + height), mask=mask.astype(bool))


def disk(size, centre, radius):
    canvas = np.zeros(size, dtype=np.uint8)
    cv2.circle(canvas, centre, radius, 1, thickness=-1)
    return canvas.astype(bool)


def points_of(parts):
    return np.array(
        [point for part in parts for ring in [part["exterior"], *part["holes"]] for point in ring]
    )


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def assert_outline_matches_its_rle(item, height, width, within=0.05):
    """The polygons, filled with their holes open, cover the RLE's area and its pixels."""
    mask = decoded(item)
    area = int(filled(item["polygons"], height, width).sum())
    assert abs(area - item["area"]) <= within * item["area"], (item["label"], area, item["area"])
    assert iou(filled(item["polygons"], height, width), mask) >= 0.9, item["label"]
    # Within the mask's own extent, in the photo's pixel corners (tolerance: 1 px).
    ys, xs = np.nonzero(mask)
    corners = points_of(item["polygons"])
    assert corners[:, 0].min() >= xs.min() - 1 and corners[:, 0].max() <= xs.max() + 2
    assert corners[:, 1].min() >= ys.min() - 1 and corners[:, 1].max() <= ys.max() + 2


def test_a_one_pixel_mask_is_the_square_of_its_pixel_corners():
    (parts,), _ = instance_polygons([instance_of(np.ones((1, 1)), x0=3, y0=4)])
    assert len(parts) == 1 and parts[0]["holes"] == []
    assert sorted(map(tuple, parts[0]["exterior"])) == [(3, 4), (3, 5), (4, 4), (4, 5)]


def test_an_unsimplified_trace_is_exactly_the_mask_with_holes_and_diagonal_touches():
    # Random masks: parts, holes, parts in holes, pixels meeting only at a corner.
    rng = np.random.default_rng(5)
    for _ in range(200):
        height, width = rng.integers(1, 25, size=2)
        instance = instance_of(rng.random((height, width)) < rng.uniform(0.2, 0.8), x0=7, y0=2)
        parts = {}
        for ring in polygons._traced(0, instance, limit=10_000)[0]:
            part = parts.setdefault(ring.part, {"exterior": None, "holes": []})
            if ring.hole:
                part["holes"].append(ring.points.tolist())
            else:
                part["exterior"] = ring.points.tolist()
        photo = (height + 4, width + 9)
        assert np.array_equal(filled(list(parts.values()), *photo), instance.full_mask(*photo))


def test_a_mask_with_a_hole_gets_its_hole():
    ring = np.ones((30, 30), dtype=bool)
    ring[10:20, 8:18] = False
    item = instance_summary([instance_of(ring, x0=40, y0=25)], 80, 100, COCO_80)["instances"][0]

    (part,) = item["polygons"]
    assert sorted(map(tuple, part["exterior"])) == [(40, 25), (40, 55), (70, 25), (70, 55)]
    assert [sorted(map(tuple, hole)) for hole in part["holes"]] == [[(48, 35), (48, 45), (58, 35), (58, 45)]]
    assert np.array_equal(filled(item["polygons"], 80, 100), decoded(item))
    assert int(filled(item["polygons"], 80, 100).sum()) == item["area"] == 800


def test_a_mask_in_two_parts_gets_two_parts_largest_first():
    mask = disk((120, 200), (50, 60), 40) | disk((120, 200), (160, 60), 25)
    item = instance_summary([instance_of(mask, x0=10, y0=5)], 140, 220, COCO_80)["instances"][0]

    assert len(item["polygons"]) == 2
    first, second = (points_of([part]) for part in item["polygons"])
    assert first[:, 0].max() <= 10 + 91 < second[:, 0].min()  # the larger disk is on the left
    assert_outline_matches_its_rle(item, 140, 220)


def test_holes_wind_against_their_exterior_so_either_fill_rule_leaves_them_open():
    mask = disk((90, 90), (45, 45), 40) & ~disk((90, 90), (45, 45), 25) | disk((90, 90), (45, 45), 10)
    (parts,), _ = instance_polygons([instance_of(mask, x0=3, y0=3)])

    assert len(parts) == 2 and len(parts[0]["holes"]) == 1  # the ring with its hole, the island
    assert np.array_equal(filled(parts, 100, 100, "nonzero"), filled(parts, 100, 100, "evenodd"))
    for part in parts:
        # Shoelace sums: negative is anticlockwise on screen (y down).
        assert polygons._signed_area(np.array(part["exterior"])) < 0
        assert all(polygons._signed_area(np.array(hole)) > 0 for hole in part["holes"])


def test_the_budget_holds_on_a_checkerboard():
    # One part (its squares meet at corners) with about 20,000 one-pixel holes: 80,000 points.
    checkerboard = np.indices((200, 200)).sum(axis=0) % 2 == 0
    summary = instance_summary([instance_of(checkerboard)], 200, 200, COCO_80)

    budget = summary["polygon_budget"]
    kept = points_of(summary["instances"][0]["polygons"])
    assert budget["points"] == len(kept) <= MAX_POLYGON_POINTS == budget["max_points"]
    # Simplifying more would save nothing here (its points are in its holes): the outline
    # keeps its tolerance, and the smallest holes are left out.
    assert budget["truncated"] and not budget["simplified"]
    (part,) = summary["instances"][0]["polygons"]  # the board's outline, with what holes fit
    exterior = np.array(part["exterior"])
    assert (exterior.min(axis=0) <= 1).all() and (exterior.max(axis=0) >= 199).all()
    assert 2000 < len(part["holes"]) < 2500
    assert len(json.dumps(summary)) < 200_000


def test_over_the_budget_the_smallest_parts_are_left_out_and_every_instance_keeps_one():
    specks = np.zeros((400, 400), dtype=bool)
    sides = [1 + number % 6 for number in range(500)]  # 500 squares of 1 to 6 px a side, apart
    for number, side in enumerate(sides):
        y, x = 16 * (number // 25), 16 * (number % 25)
        specks[y : y + side, x : x + side] = True
    small = instance_of(np.ones((2, 2)), x0=400, y0=0)  # smaller than any square kept
    outlines, budget = instance_polygons([instance_of(specks), small], max_points=1000)

    assert budget["truncated"] and not budget["simplified"] and budget["points"] <= 1000
    kept = sorted((int(filled([part], 400, 400).sum()) for part in outlines[0]), reverse=True)
    assert 100 < len(kept) < 500
    assert kept == sorted((side * side for side in sides), reverse=True)[: len(kept)]  # the largest
    assert len(outlines[1]) == 1  # the small instance, ranked with every instance's largest part


def test_a_detailed_outline_over_the_budget_is_simplified_before_any_part_is_left_out():
    mask = disk((420, 420), (210, 210), 200)
    (parts,), budget = instance_polygons([instance_of(mask)], max_points=20)

    assert budget["simplified"] and not budget["truncated"] and budget["points"] <= 20
    assert abs(int(filled(parts, 420, 420).sum()) - int(mask.sum())) <= 0.05 * mask.sum()


def test_a_mask_past_the_trace_limit_is_traced_coarser_in_the_same_coordinates(monkeypatch):
    monkeypatch.setattr(polygons, "MAX_TRACE_PIXELS", 2_500)  # a 150x200 box: blocks of 4x4 px
    mask = disk((150, 200), (100, 75), 70)
    item = instance_summary([instance_of(mask, x0=30, y0=20)], 200, 260, COCO_80)["instances"][0]

    assert_outline_matches_its_rle(item, 200, 260, within=0.05)
    corners = points_of(item["polygons"])
    assert (corners.min(axis=0) >= [30, 20]).all() and (corners.max(axis=0) <= [230, 170]).all()


@pytest.mark.parametrize("photo", ["photos/chelsea.jpg", "photos/coffee.jpg", "photos/astronaut.jpg"])
def test_the_real_models_instances_have_polygons_that_cover_their_rle(engines, photo):
    rgb = np.asarray(Image.open(eval_photo(photo)).convert("RGB"))
    height, width = rgb.shape[:2]
    instances = engines.get_model("yolov8n_seg_coco").infer(rgb, {"score_threshold": 0.25}).instances
    summary = instance_summary(instances, height, width, COCO_80)

    assert summary["instances"] and not summary["polygon_budget"]["truncated"]
    for item in summary["instances"]:
        assert item["polygons"], item["label"]
        assert_outline_matches_its_rle(item, height, width)


def test_polygons_are_in_the_original_photos_pixels_when_its_mask_was_upsampled(engines):
    # Three times chelsea: the network sees 640 px, its masks 160; the photo is 1353x900.
    photo = Image.open(eval_photo("photos/chelsea.jpg")).convert("RGB")
    rgb = np.asarray(photo.resize((photo.width * 3, photo.height * 3), Image.BICUBIC))
    height, width = rgb.shape[:2]
    instances = engines.get_model("yolov8n_seg_coco").infer(rgb, {}).instances
    cat = instance_summary(instances, height, width, COCO_80)["instances"][0]

    assert cat["label"] == "cat" and cat["area"] > 0.5 * width * height
    assert_outline_matches_its_rle(cat, height, width)
    x, y, box_width, box_height = cat["bbox"]
    corners = points_of(cat["polygons"])
    assert (corners.min(axis=0) >= [x, y]).all()
    assert (corners.max(axis=0) <= [x + box_width, y + box_height]).all()
