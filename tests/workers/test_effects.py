"""The background effects on arrays made here: refinement, decontamination, composites."""

import cv2
import numpy as np
import pytest

from core.colours import parse_colour
from workers import effects


def diagonal_photo(size=512):
    """A red object below a soft diagonal edge, on green; and its true alpha (0..1)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    alpha = np.clip((y - x * 0.6 - size * 0.2) / 3.0 + 0.5, 0.0, 1.0)  # a 3 px soft edge
    red, green = np.array([220, 30, 30], np.float32), np.array([30, 200, 40], np.float32)
    photo = alpha[..., None] * red + (1 - alpha[..., None]) * green
    return np.rint(photo).astype(np.uint8), alpha


def coarse_upscaled(alpha, factor=8):
    """What a network at 1/factor resolution gives, upscaled by nearest neighbour."""
    small = alpha[::factor, ::factor] > 0.5
    return np.repeat(np.repeat(small, factor, axis=0), factor, axis=1).astype(np.float32)


def test_refinement_turns_stair_steps_into_the_photos_own_soft_edge():
    photo, truth = diagonal_photo()
    coarse = coarse_upscaled(truth)
    refined = effects.refine(photo, coarse, network_side=64)

    edge = (truth > 0.05) & (truth < 0.95)
    assert ((coarse[edge] > 0) & (coarse[edge] < 1)).mean() == 0  # a hard mask: no soft pixel
    assert ((refined[edge] > 0.05) & (refined[edge] < 0.95)).mean() > 0.5
    # Closer to the true alpha than the stairs were.
    assert np.abs(refined - truth).mean() < 0.85 * np.abs(coarse - truth).mean()


def test_the_subsampled_filter_of_a_large_photo_agrees_with_the_full_one():

    photo, truth = diagonal_photo(1024)
    coarse = coarse_upscaled(truth, 16)
    refined = effects.refine(photo, coarse, network_side=64)  # radius 32: subsampled by 8
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    full = np.clip(cv2.ximgproc.guidedFilter(grey, coarse, 32, effects.EPS * 255 * 255), 0, 1)
    assert np.abs(refined - full).mean() < 0.01
    assert np.abs(refined - truth).mean() < 0.85 * np.abs(coarse - truth).mean()


def test_decontamination_takes_the_old_backgrounds_colour_out_of_the_edge():
    photo, truth = diagonal_photo()
    cleaned = effects.decontaminate(photo, truth)

    edge = (truth > 0.2) & (truth < 0.8)
    green_before = photo[edge][:, 1].mean()
    green_after = cleaned[edge][:, 1].mean()
    assert green_before > 90 and green_after < 60  # the foreground is red: little green left
    inside = truth == 1.0
    assert (cleaned[inside] == photo[inside]).all()  # only edge pixels change


def test_a_colour_background_shows_where_the_alpha_is_zero():
    photo, truth = diagonal_photo(64)
    shown = effects.composite(
        photo.astype(np.float32), truth, effects.Background("colour", colour=(0, 0, 255))
    )
    assert (shown[truth == 0] == [0, 0, 255]).all()
    assert (shown[truth == 1] == photo[truth == 1]).all()


def test_a_blurred_background_keeps_the_foregrounds_colour_out_of_the_blur():
    photo, truth = diagonal_photo(256)
    behind = effects.blurred_background(photo, truth, blur_radius=40)
    far_background = truth == 0
    # Red (the foreground) does not bleed into the blurred background near the edge.
    near = far_background & (np.roll(truth, -12, axis=0) > 0.5)
    assert behind[near][:, 0].mean() < 60


def test_a_background_image_covers_the_photo_centred():
    wide = np.zeros((100, 400, 3), np.uint8)
    wide[:, 150:250] = 255  # a white band in the middle
    covered = effects.cover(wide, 100, 100)
    assert covered.shape == (100, 100, 3) and (covered == 255).all()  # the middle, scaled to cover


@pytest.mark.parametrize(
    "margin, box",
    [((0, "px"), (20, 30, 60, 50)), ((5, "px"), (15, 25, 65, 55)), ((10, "%"), (10, 20, 70, 60))],
)
def test_the_foreground_box_grows_by_its_margin_inside_the_photo(margin, box):
    alpha = np.zeros((100, 100), np.float32)
    alpha[30:50, 20:60] = 1.0
    assert effects.foreground_box(alpha, margin) == box


def test_no_foreground_has_no_box():
    assert effects.foreground_box(np.zeros((10, 10), np.float32)) is None


@pytest.mark.parametrize(
    "text, rgb",
    [("#ff8000", (255, 128, 0)), ("ff8000", (255, 128, 0)), ("fff", (255, 255, 255)), ("red", (255, 0, 0))],
)
def test_colours_are_read_as_clients_write_them(text, rgb):
    assert parse_colour(text) == rgb


def test_a_bad_colour_is_a_value_error():
    with pytest.raises(ValueError):
        parse_colour("not-a-colour")


def test_a_cutout_decontaminates_its_edge_and_follows_the_photo(tmp_path):
    from core.repository import local_specs
    from workers.cutout import render_cutout
    from workers.results import SemanticResult

    photo, truth = diagonal_photo()
    # A semantic model's answer at 1/8 of the photo, upscaled by nearest neighbour.
    class_map = coarse_upscaled(truth).astype(np.uint8) * 15
    spec = local_specs()["deeplabv3_mnv2_pascal"]
    rendered = render_cutout(photo, SemanticResult(class_map), spec, {"background": "transparent"})

    import io

    from PIL import Image

    rgba = np.asarray(Image.open(io.BytesIO(rendered.files["cutout.png"])))
    edge = (truth > 0.2) & (truth < 0.8) & (rgba[..., 3] > 25)
    assert photo[edge][:, 1].mean() > 90 and rgba[edge][:, 1].mean() < 60  # no green rim
    assert ((rgba[..., 3] > 0) & (rgba[..., 3] < 255)).mean() > 0.005  # soft, not stairs


def test_the_background_starts_from_a_reduced_copy_of_its_size_and_only_then():
    photo, truth = diagonal_photo(512)
    own = effects.background_around(photo, truth)
    blue = np.zeros((128, 128, 3), np.uint8)
    blue[..., 2] = 255  # not the photo: what background_around makes of it shows it was used
    given = effects.background_around(photo, truth, reduced=blue)
    assert given.shape == own.shape == (128, 128, 3)
    background = cv2.resize(truth, (128, 128), interpolation=cv2.INTER_AREA) < 0.1
    assert given[background][:, 2].min() > 250 and own[background][:, 2].max() < 60
    other_size = effects.background_around(photo, truth, reduced=np.zeros((64, 64, 3), np.uint8))
    assert np.array_equal(other_size, own)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_cutout_hands_the_networks_copy_to_decontamination_only_uncropped(monkeypatch, threads):
    from django.test import override_settings

    from core.repository import local_specs
    from workers import cutout
    from workers.results import SemanticResult

    photo, truth = diagonal_photo(512)
    seen = np.asarray(cv2.resize(photo, (128, 128), interpolation=cv2.INTER_AREA))
    class_map = (cv2.resize(truth, (128, 128)) > 0.5).astype(np.uint8) * 15
    spec = local_specs()["deeplabv3_mnv2_pascal"]
    handed = []
    real = effects.decontaminate
    monkeypatch.setattr(
        effects, "decontaminate", lambda rgb, alpha, reduced: handed.append(reduced) or real(rgb, alpha)
    )
    with override_settings(INFERENCE_THREADS=threads):  # the matte on a second thread, or not
        whole = cutout.render_cutout(photo, SemanticResult(class_map), spec, {}, seen=seen)
        cropped = cutout.render_cutout(photo, SemanticResult(class_map), spec, {"crop": True}, seen=seen)
    assert handed[0] is seen and handed[1] is None
    import io

    from PIL import Image

    for rendered in (whole, cropped):
        matte = np.asarray(Image.open(io.BytesIO(rendered.files["matte.png"])))
        alpha = np.asarray(Image.open(io.BytesIO(rendered.files["cutout.png"])))[..., 3]
        assert np.array_equal(matte, alpha) and 0.3 < (matte > 127).mean() < 0.9
