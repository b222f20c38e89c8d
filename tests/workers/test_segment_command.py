"""`manage.py segment`: the pipeline in-process, with no broker and no database (the test
has no database access at all: pytest-django refuses any query)."""

import json

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from tests.conftest import eval_photo


def test_it_writes_what_the_api_serves_for_each_image(engines, tmp_path, capsys):
    photos = [eval_photo("photos/chelsea.jpg"), eval_photo("photos/coffee.jpg")]
    call_command("segment", *map(str, photos), "--model", "deeplabv3_mnv2_pascal", "--out", str(tmp_path))
    for photo in photos:
        folder = tmp_path / photo.stem
        assert sorted(p.name for p in folder.iterdir()) == ["mask.png", "overlay.jpg", "result.json"]
        with Image.open(photo) as original, Image.open(folder / "mask.png") as mask:
            assert mask.size == original.size and mask.mode == "P"  # the original size, as the API
    cat = json.loads((tmp_path / "chelsea" / "result.json").read_text())
    assert max(cat["classes"], key=lambda c: c["pixels"])["label"] == "cat"


def test_instance_models_write_the_instance_map(engines, tmp_path):
    photo = eval_photo("photos/chelsea.jpg")
    call_command(
        "segment", str(photo), "--model", "yolov8n_seg_coco", "--out", str(tmp_path), "--classes", "cat"
    )
    result = json.loads((tmp_path / "chelsea" / "result.json").read_text())
    assert {p.name for p in (tmp_path / "chelsea").iterdir()} == {
        "instances.png",
        "overlay.jpg",
        "result.json",
    }
    assert [i["label"] for i in result["instances"]] == ["cat"]


def test_unreadable_images_are_reported_and_the_rest_are_done(engines, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    photo = eval_photo("photos/chelsea.jpg")
    with pytest.raises(CommandError, match="1 of 3 image"):
        call_command(
            "segment",
            str(broken),
            str(photo),
            str(photo),
            "--model",
            "deeplabv3_mnv2_pascal",
            "--out",
            str(tmp_path / "out"),
        )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["chelsea", "chelsea-2"]


def test_an_unknown_class_is_refused_before_any_work(tmp_path):
    with pytest.raises(CommandError, match="no class unicorn"):
        call_command(
            "segment",
            "x.jpg",
            "--model",
            "deeplabv3_mnv2_pascal",
            "--out",
            str(tmp_path),
            "--classes",
            "unicorn",
        )


def test_a_cutout_batch_writes_the_matte_and_the_cutout_of_each_image(engines, tmp_path):
    photos = [eval_photo("photos/astronaut.jpg"), eval_photo("photos/chelsea.jpg")]
    call_command(
        "segment", *map(str, photos), "--model", "deeplabv3_mnv2_pascal", "--cutout", "--out", str(tmp_path)
    )
    for photo in photos:
        folder = tmp_path / photo.stem
        assert sorted(p.name for p in folder.iterdir()) == ["cutout.png", "matte.png", "result.json"]
        with Image.open(photo) as original, Image.open(folder / "cutout.png") as cutout:
            assert cutout.size == original.size and cutout.mode == "RGBA"
    assert json.loads((tmp_path / "chelsea" / "result.json").read_text())["classes"] == ["cat"]


def test_a_cutout_onto_a_background_image_cropped_to_the_person(engines, tmp_path):
    photo, behind = eval_photo("photos/astronaut.jpg"), eval_photo("photos/coffee.jpg")
    call_command(
        "segment", str(photo), "--model", "deeplabv3_mnv2_pascal", "--cutout", "--classes", "person",
        "--background-image", str(behind), "--crop", "--crop-margin", "5%", "--out", str(tmp_path),
    )  # fmt: skip
    result = json.loads((tmp_path / "astronaut" / "result.json").read_text())
    assert result["background"] == "image" and result["classes"] == ["person"]
    with Image.open(tmp_path / "astronaut" / "composite.jpg") as composite:
        assert list(composite.size) == result["output_size"] == result["crop"][2:]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--crop"], "--crop goes with --cutout"),
        (["--cutout", "--background", "plaid"], "--background: background must be"),
        (["--cutout", "--blur-radius", "5"], "--blur-radius: blur_radius goes with background=blur"),
    ],
)
def test_effect_options_are_checked_as_the_api_checks_them(engines, tmp_path, arguments, message):
    photo = eval_photo("photos/astronaut.jpg")
    with pytest.raises(CommandError, match=message):
        call_command(
            "segment", str(photo), "--model", "deeplabv3_mnv2_pascal", *arguments, "--out", str(tmp_path)
        )
