from pathlib import Path

import pytest

from core.repository import local_specs

LABELS = Path(__file__).resolve().parents[3] / "shared" / "models" / "labels"
VOC_MODELS = ["deeplabv3_mnv2_pascal", "deeplabv3_mnv2_dm05_pascal", "deeplabv3plus_xception_pascal"]
COCO_MODELS = ["yolov8n_seg_coco", "mask_rcnn_coco"]


def label_file(name):
    """Lines of a label file shipped with the weights; skip where ../shared/models is absent."""
    path = LABELS / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared label files are not beside this checkout")
    return tuple(path.read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("name", VOC_MODELS)
def test_pascal_voc_models_label_their_classes_as_the_file_shipped_with_the_weights(name):
    labels = local_specs()[name].labels
    assert labels == label_file("pascal_voc_21.txt")
    assert len(labels) == 21 and labels[0] == "background" and labels[15] == "person"


@pytest.mark.parametrize("name", COCO_MODELS)
def test_coco_models_label_their_classes_as_the_file_shipped_with_the_weights(name):
    labels = local_specs()[name].labels
    assert labels == label_file("coco_80.txt")
    assert len(labels) == 80 and labels[0] == "person"
