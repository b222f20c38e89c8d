"""`manage.py check_model`: a model folder checked against its weights, and one image run.

A wrong spec must fail with a message that names the field to change and what the file
holds instead. The broken specs are copies of a shipped folder (the weight file linked,
not copied) with one line changed; the tiny ONNX and LiteRT networks are written by
tests/fixtures/tiny_models.py in a process of its own (TensorFlow stays out of this one).
"""

import hashlib
import io
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import eval_photo

REPO = Path(__file__).resolve().parents[2]
DEEPLAB = REPO / "models" / "deeplabv3_mnv2_pascal"
DEEPLAB_WEIGHTS = DEEPLAB / "deeplabv3_mnv2_pascal_quant.tflite"


def check_model(*args):
    """The command's output; raises CommandError as the command does."""
    out = io.StringIO()
    call_command("check_model", *map(str, args), stdout=out)
    return out.getvalue()


def failure(*args):
    """The message check_model fails with."""
    with pytest.raises(CommandError) as raised:
        check_model(*args)
    return str(raised.value)


def copied(source, tmp_path, old=None, new=None):
    """`source`'s folder copied under tmp_path (same name), the weights linked, and one
    line of its model.toml changed from `old` to `new`."""
    folder = tmp_path / source.name
    folder.mkdir()
    for path in source.iterdir():
        if path.name == "model.toml" or path.suffix == ".txt":
            shutil.copy(path, folder / path.name)
        else:
            (folder / path.name).symlink_to(path)
    if old is not None:
        spec = (folder / "model.toml").read_text()
        assert old in spec, f"{old!r} is not in {source}/model.toml: the test no longer changes anything"
        (folder / "model.toml").write_text(spec.replace(old, new, 1))
    return folder


def fraction(output, line_start):
    """The number on the output line starting with `line_start`."""
    found = re.search(rf"^{re.escape(line_start)} ([0-9.]+)$", output, re.MULTILINE)
    assert found, f"no line starting {line_start!r} in:\n{output}"
    return float(found.group(1))


def test_a_shipped_semantic_model_passes_and_finds_the_astronaut():
    output = check_model("deeplabv3_mnv2_pascal", "--image", eval_photo("photos/astronaut.jpg"))
    lines = output.splitlines()
    assert "task: semantic" in lines
    assert "input: [1, 513, 513, 3] uint8" in lines
    classes = lines[lines.index("classes:") + 1 : lines.index("files:")]
    assert any(line.startswith("  person: ") for line in classes), output
    assert lines[-1] == "OK: deeplabv3_mnv2_pascal is ready to serve"


def test_a_shipped_matte_model_reports_its_foreground_fraction():
    output = check_model("selfie_segmentation_mediapipe", "--image", eval_photo("photos/astronaut.jpg"))
    assert "task: matte" in output.splitlines()
    # The astronaut fills about half the photo.
    assert 0.3 < fraction(output, "foreground (person):") < 0.8


def test_it_names_the_field_when_the_input_size_is_wrong(tmp_path):
    folder = copied(DEEPLAB, tmp_path, "size = [513, 513]", "size = [257, 257]")
    message = failure(folder)
    assert "input.size is [257, 257]" in message
    assert "takes [1, 513, 513, 3]" in message


def test_it_gives_the_files_real_digest_when_the_sha256_is_wrong(tmp_path):
    real = hashlib.sha256(DEEPLAB_WEIGHTS.read_bytes()).hexdigest()
    folder = copied(DEEPLAB, tmp_path, real, "0" * 64)
    message = failure(folder)
    assert f"weights.sha256 says {'0' * 64}" in message
    assert f"has sha256 {real}" in message


def test_it_names_the_field_when_the_input_dtype_is_wrong(tmp_path):
    folder = copied(DEEPLAB, tmp_path, 'dtype = "uint8"', 'dtype = "float32"')
    message = failure(folder)
    assert "input.dtype is float32" in message
    assert "takes uint8" in message


def test_a_misspelt_fit_names_the_field_and_the_choices(tmp_path):
    folder = copied(DEEPLAB, tmp_path, 'fit = "tiles"', 'fit = "lettrbox"')
    message = failure(folder)
    assert "input.fit is 'lettrbox'" in message
    assert "one of letterbox, stretch, tiles, native" in message


def test_it_counts_the_classes_when_an_argmax_model_has_too_many_labels(tiny_models, tmp_path):
    folder = copied(
        tiny_models / "tiny_semantic_onnx",
        tmp_path,
        'labels = ["background", "red", "blue"]',
        'labels = ["background", "red", "blue", "green"]',
    )
    message = failure(folder)
    assert "labels has 4 names" in message
    assert "scores 3 classes" in message


@pytest.mark.parametrize("runtime", ["onnx", "tflite"])
def test_a_tiny_matte_passes_on_either_runtime(tiny_models, runtime):
    output = check_model(tiny_models / f"tiny_matte_{runtime}", "--image", eval_photo("photos/astronaut.jpg"))
    assert "input: [1, 64, 64, 3] float32" in output.splitlines()
    # Neither all foreground nor none: the network responds to the photo.
    assert 0.05 < fraction(output, "foreground (foreground):") < 0.95
    assert output.splitlines()[-1] == f"OK: tiny_matte_{runtime} is ready to serve"


def test_a_tiny_semantic_model_passes_with_no_image(tiny_models):
    output = check_model(tiny_models / "tiny_semantic_onnx")
    lines = output.splitlines()
    assert "image: synthetic gradient, 640x480" in lines
    assert "outputs: [1, 64, 64, 3]" in lines
    assert lines[-1] == "OK: tiny_semantic_onnx is ready to serve"


def test_an_unknown_name_lists_the_models_there():
    message = failure("no_such_model")
    assert "no_such_model is neither a folder nor a model" in message
    assert "deeplabv3_mnv2_pascal" in message
