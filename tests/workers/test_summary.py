import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from tests.conftest import COCO_80, PASCAL_VOC
from tests.workers.helpers import filled
from workers.polygons import MAX_POLYGON_POINTS
from workers.results import Instance
from workers.summary import instance_summary, semantic_summary


def decode_rle(rle):
    return coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})


@pytest.fixture
def two_instances():
    """A person with an L-shaped mask and a dog below it; best score first."""
    person_mask = np.zeros((20, 10), dtype=bool)
    person_mask[:, :3] = True
    person_mask[-4:, :] = True
    dog_mask = np.ones((6, 15), dtype=bool)
    dog_mask[0, 0] = False
    return [
        Instance(class_id=0, score=0.91237, box=(5, 3, 15, 23), mask=person_mask),
        Instance(class_id=16, score=0.5, box=(20, 24, 35, 30), mask=dog_mask),
    ]


def test_semantic_summary_counts_every_class_pixel_exactly():
    class_map = np.zeros((30, 40), dtype=np.uint8)
    class_map[:10, :] = 15  # 400 person pixels
    class_map[20:, 30:] = 8  # 100 cat pixels

    summary = semantic_summary(class_map, PASCAL_VOC)

    assert summary["image_size"] == [40, 30]
    assert [(c["id"], c["label"], c["pixels"]) for c in summary["classes"]] == [
        (0, "background", 700),
        (8, "cat", 100),
        (15, "person", 400),
    ]


def test_semantic_fractions_sum_to_one():
    rng = np.random.default_rng(7)
    class_map = rng.integers(0, 21, size=(37, 53), dtype=np.uint8)

    classes = semantic_summary(class_map, PASCAL_VOC)["classes"]

    assert sum(c["pixels"] for c in classes) == 37 * 53
    assert sum(c["fraction"] for c in classes) == pytest.approx(1.0, abs=1e-5)
    for c in classes:
        assert c["fraction"] == pytest.approx(c["pixels"] / (37 * 53), abs=1e-6)


def test_instance_rle_decodes_to_exactly_the_full_mask(two_instances):
    summary = instance_summary(two_instances, 32, 40, COCO_80)

    for instance, item in zip(two_instances, summary["instances"], strict=True):
        assert item["rle"]["size"] == [32, 40]
        assert np.array_equal(decode_rle(item["rle"]), instance.full_mask(32, 40))


def test_instance_bbox_is_x_y_width_height(two_instances):
    items = instance_summary(two_instances, 32, 40, COCO_80)["instances"]

    assert items[0]["bbox"] == [5, 3, 10, 20]
    assert items[1]["bbox"] == [20, 24, 15, 6]


def test_instance_area_is_its_mask_pixel_count(two_instances):
    items = instance_summary(two_instances, 32, 40, COCO_80)["instances"]

    assert items[0]["area"] == 3 * 20 + 7 * 4
    assert items[1]["area"] == 6 * 15 - 1
    for instance, item in zip(two_instances, items, strict=True):
        assert item["area"] == int(decode_rle(item["rle"]).sum()) == int(instance.mask.sum())


def test_instances_are_numbered_from_one_in_order_with_their_labels(two_instances):
    summary = instance_summary(two_instances, 32, 40, COCO_80)

    assert summary["image_size"] == [40, 32]
    assert [(i["index"], i["label"], i["class_id"], i["score"]) for i in summary["instances"]] == [
        (1, "person", 0, 0.9124),
        (2, "dog", 16, 0.5),
    ]


def test_summaries_are_plain_json(two_instances):
    class_map = np.zeros((32, 40), dtype=np.uint8)
    class_map[3:10, 3:10] = 15

    for summary in (
        semantic_summary(class_map, PASCAL_VOC),
        instance_summary(two_instances, 32, 40, COCO_80),
    ):
        assert json.loads(json.dumps(summary)) == summary


def test_an_image_with_no_instances_has_an_empty_list():
    assert instance_summary([], 10, 20, COCO_80) == {
        "image_size": [20, 10],
        "instances": [],
        "polygon_budget": {
            "max_points": MAX_POLYGON_POINTS,
            "points": 0,
            "simplified": False,
            "truncated": False,
        },
    }


def test_each_instance_has_polygons_that_fill_exactly_its_rle_mask(two_instances):
    summary = instance_summary(two_instances, 32, 40, COCO_80)

    for item in summary["instances"]:
        assert np.array_equal(filled(item["polygons"], 32, 40), decode_rle(item["rle"]))
    assert summary["polygon_budget"]["points"] == sum(
        len(part["exterior"]) + sum(map(len, part["holes"]))
        for i in summary["instances"]
        for part in i["polygons"]
    )
