from pathlib import Path

import pytest

from workers.labels import COCO_80, PASCAL_VOC

LABELS = Path(__file__).resolve().parents[3] / "shared" / "models" / "labels"


def label_file(name):
    """Lines of a label file shipped with the weights; skip where ../shared/models is absent."""
    path = LABELS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared label files are not beside this checkout")
    return path.read_text(encoding="utf-8").splitlines()


def test_pascal_voc_labels_match_the_label_file_shipped_with_the_weights():
    assert PASCAL_VOC == tuple(label_file("pascal_voc_21.txt"))
    assert len(PASCAL_VOC) == 21 and PASCAL_VOC[0] == "background"


def test_coco_labels_match_the_label_file_shipped_with_the_weights():
    assert COCO_80 == tuple(label_file("coco_80.txt"))
    assert len(COCO_80) == 80 and COCO_80[0] == "person"
