"""YOLOv8-seg post-processing on synthetic network outputs: no weights, no interpreter."""

import numpy as np
import pytest

from core.repository import local_specs
from workers import fitting
from workers.decoders import yolov8_seg
from workers.decoders.yolov8_seg import non_max_suppression

SIZE = 640
CLASSES = 80
COEFFS = 32
PERSON, CAR, DOG = 0, 2, 16


SPEC = local_specs()["yolov8n_seg_coco"]
LETTERBOX_PAD = 114  # Ultralytics' grey, as the model's spec says


class Decoder:
    """yolov8_seg's steps with this model's sizes bound: only the post-processing."""

    def _detections(self, pred, threshold, class_ids):
        return yolov8_seg._detections(pred, CLASSES, SIZE, threshold, class_ids)

    def _instance(self, box, score, class_id, coeff, protos, letterbox, width, height):
        return yolov8_seg._instance(box, score, class_id, coeff, protos, SIZE, letterbox, width, height)

    def _letterbox(self, rgb):
        batch, placement = fitting.fit(rgb, SPEC.input)
        return batch, (placement.width / rgb.shape[1], placement.left, placement.top)


@pytest.fixture
def engine():
    return Decoder()


def anchor(box, scores, coeffs=None):
    """One row of the transposed (N, 116) output: box x0, y0, x1, y1 in input pixels."""
    x0, y0, x1, y1 = box
    row = np.zeros(4 + CLASSES + COEFFS, dtype=np.float32)
    row[:4] = np.array([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]) / SIZE
    for class_id, score in scores.items():
        row[4 + class_id] = score
    if coeffs is not None:
        row[4 + CLASSES :] = coeffs
    return row


def nms(rows, iou_threshold=0.5):
    boxes = np.array([box for box, _, _ in rows], dtype=np.float64)
    scores = np.array([score for _, score, _ in rows], dtype=np.float64)
    classes = np.array([class_id for _, _, class_id in rows], dtype=np.int64)
    return non_max_suppression(boxes, scores, classes, iou_threshold).tolist()


def test_nms_suppresses_an_overlapping_box_of_the_same_class():
    kept = nms(
        [
            ((0, 0, 100, 100), 0.9, PERSON),
            ((10, 10, 110, 110), 0.8, PERSON),  # IoU 0.68 with the first
        ]
    )

    assert kept == [0]


def test_nms_keeps_an_overlapping_box_of_another_class():
    kept = nms(
        [
            ((0, 0, 100, 100), 0.9, PERSON),
            ((10, 10, 110, 110), 0.8, DOG),
        ]
    )

    assert kept == [0, 1]


def test_nms_keeps_a_same_class_box_that_overlaps_less_than_the_threshold():
    kept = nms(
        [
            ((0, 0, 100, 100), 0.9, PERSON),
            ((50, 0, 150, 100), 0.8, PERSON),  # IoU 1/3
        ]
    )

    assert kept == [0, 1]


def test_nms_returns_the_kept_boxes_highest_score_first():
    kept = nms(
        [
            ((0, 0, 100, 100), 0.6, PERSON),
            ((300, 300, 400, 400), 0.95, CAR),
            ((5, 5, 105, 105), 0.7, PERSON),  # beats box 0, which it suppresses
            ((200, 0, 260, 60), 0.8, DOG),
            ((2, 2, 102, 102), 0.65, DOG),
        ]
    )

    assert kept == [1, 3, 2, 4]


def test_nms_of_nothing_is_nothing():
    empty = np.zeros((0, 4))
    kept = non_max_suppression(empty, np.zeros(0), np.zeros(0, dtype=np.int64), 0.5)

    assert kept.shape == (0,)


def test_detections_drop_anchors_below_the_score_threshold(engine):
    pred = np.stack(
        [
            anchor((100, 100, 200, 300), {PERSON: 0.9}),
            anchor((400, 100, 500, 200), {CAR: 0.3}),
            anchor((300, 400, 420, 520), {DOG: 0.55}),
        ]
    )

    boxes, scores, classes, coeffs = engine._detections(pred, 0.5, None)

    assert classes.tolist() == [PERSON, DOG]
    assert scores.tolist() == pytest.approx([0.9, 0.55])
    assert np.allclose(boxes, [[100, 100, 200, 300], [300, 400, 420, 520]], atol=1e-3)
    assert coeffs.shape == (2, COEFFS)


def test_detections_keep_only_the_requested_classes(engine):
    pred = np.stack(
        [
            anchor((100, 100, 200, 300), {PERSON: 0.9}),
            anchor((300, 400, 420, 520), {DOG: 0.7}),
            anchor((400, 100, 500, 200), {CAR: 0.8}),
        ]
    )

    _, scores, classes, _ = engine._detections(pred, 0.5, [DOG, CAR])

    assert classes.tolist() == [CAR, DOG]
    assert scores.tolist() == pytest.approx([0.8, 0.7])


def test_a_class_filter_picks_the_best_allowed_class_of_an_anchor(engine):
    pred = anchor((100, 100, 200, 300), {PERSON: 0.9, DOG: 0.6})[None]

    _, scores, classes, _ = engine._detections(pred, 0.5, [DOG])

    assert classes.tolist() == [DOG]
    assert scores.tolist() == pytest.approx([0.6])


def test_detections_carry_each_kept_anchors_mask_coefficients(engine):
    first, second = np.full(COEFFS, 1.0), np.full(COEFFS, -2.0)
    pred = np.stack(
        [
            anchor((0, 0, 50, 50), {CAR: 0.6}, first),
            anchor((300, 300, 400, 400), {CAR: 0.9}, second),
        ]
    )

    _, _, _, coeffs = engine._detections(pred, 0.5, None)

    assert np.array_equal(coeffs, np.stack([second, first]))


@pytest.mark.parametrize(
    "width, height, scale, left, top",
    [
        (320, 160, 2.0, 0, 160),  # wide: full width, bars above and below
        (300, 200, 640 / 300, 0, (640 - 427) // 2),  # 200 * 2.133 = 426.7 rows, rounded
        (100, 400, 1.6, 240, 0),  # tall: full height, bars left and right
    ],
)
def test_letterbox_centres_the_image_and_reports_scale_and_offsets(engine, width, height, scale, left, top):
    colour = np.array([200, 50, 10], dtype=np.uint8)
    rgb = np.broadcast_to(colour, (height, width, 3)).copy()

    batch, (got_scale, got_left, got_top) = engine._letterbox(rgb)

    assert batch.shape == (1, SIZE, SIZE, 3) and batch.dtype == np.float32
    assert got_scale == pytest.approx(scale)
    assert (got_left, got_top) == (left, top)
    canvas = np.rint(batch[0] * 255).astype(np.uint8)
    new_w, new_h = round(width * scale), round(height * scale)
    assert (canvas[top : top + new_h, left : left + new_w] == colour).all()
    pad = np.ones((SIZE, SIZE), dtype=bool)
    pad[top : top + new_h, left : left + new_w] = False
    assert pad.any() and (canvas[pad] == LETTERBOX_PAD).all()


def quadrant_protos(channel, x_edge, y_edge):
    """Prototypes where `channel` is strongly on left of x_edge and above y_edge, off elsewhere.

    Channel 0 holds the opposite pattern, so a wrong coefficient gives a visibly wrong mask.
    """
    protos = np.zeros((160, 160, COEFFS), dtype=np.float32)
    inside = np.zeros((160, 160), dtype=bool)
    inside[:y_edge, :x_edge] = True
    protos[..., channel] = np.where(inside, 8.0, -8.0)
    protos[..., 0] = np.where(inside, -8.0, 8.0)
    return protos


def one_hot(channel):
    coeff = np.zeros(COEFFS, dtype=np.float32)
    coeff[channel] = 1.0
    return coeff


def test_instance_maps_the_box_back_to_original_pixels(engine):
    # A 320x160 photo letterboxed at scale 2 with 160 grey rows above it.
    protos = quadrant_protos(3, 160, 160)
    box = np.array([100.0, 200.0, 540.0, 440.0])

    instance = engine._instance(box, 0.8, DOG, one_hot(3), protos, (2.0, 0, 160), 320, 160)

    assert instance.box == (50, 20, 270, 140)
    assert instance.mask.shape == (120, 220) and instance.mask.dtype == bool
    assert (instance.class_id, instance.score) == (DOG, pytest.approx(0.8))


@pytest.mark.parametrize("channel, quadrant_on", [(3, True), (0, False)], ids=["selected", "opposite"])
def test_instance_mask_follows_the_prototypes_its_coefficients_select(engine, channel, quadrant_on):
    # Channel 3 is on at proto x < 80 and y < 100, i.e. input x < 320 and y < 400, i.e.
    # photo x < 160 and y < 120: inside the box (50, 20)-(270, 140), its first 100 rows and
    # 110 columns. Channel 0 holds the opposite pattern.
    protos = quadrant_protos(3, 80, 100)
    box = np.array([100.0, 200.0, 540.0, 440.0])

    instance = engine._instance(box, 0.8, DOG, one_hot(channel), protos, (2.0, 0, 160), 320, 160)

    expected = np.full((120, 220), not quadrant_on, dtype=bool)
    expected[:100, :110] = quadrant_on
    assert np.array_equal(instance.mask, expected)


def test_instance_clamps_a_box_reaching_into_the_padding_to_the_photo(engine):
    protos = quadrant_protos(3, 160, 160)  # on everywhere
    box = np.array([-20.0, 100.0, 700.0, 600.0])  # past every edge, into both grey bars

    instance = engine._instance(box, 0.8, CAR, one_hot(3), protos, (2.0, 0, 160), 320, 160)

    assert instance.box == (0, 0, 320, 160)
    assert instance.mask.shape == (160, 320) and instance.mask.all()


def test_a_zero_threshold_never_turns_filtered_out_anchors_into_detections(engine):
    pred = np.stack(
        [
            anchor((100, 100, 200, 200), {DOG: 0.7}),
            anchor((300, 300, 400, 400), {PERSON: 0.9}),  # not asked for
            anchor((500, 500, 600, 600), {}),  # nothing at all
        ]
    )
    _, scores, classes, _ = engine._detections(pred, 0.0, [DOG])
    assert classes.tolist() == [DOG] and scores.tolist() == pytest.approx([0.7])
