import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from workers.catalog import MODELS, WeightFile, required_model_names
from workers.weights import FetchError, install, is_installed

SHARED_MODELS = Path(__file__).resolve().parents[3] / "shared" / "models"
DATA = b"pretend these are int8 weights\n" * 100


def fake_weight(data=DATA, filename="fake-model.tflite"):
    return WeightFile(
        filename=filename,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        url=f"https://example.invalid/{filename}",
        licence="test only",
    )


@pytest.fixture
def source(tmp_path):
    """A publisher-style archive: the weight file two folders deep."""
    folder = tmp_path / "source"
    nested = folder / "fake_model_v1" / "int8"
    nested.mkdir(parents=True)
    (nested / "fake-model.tflite").write_bytes(DATA)
    return folder


@pytest.fixture
def models_dir(tmp_path):
    return tmp_path / "models"


def shared_models():
    """The real weight files from ../shared/models; skip where that folder is absent."""
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"{SHARED_MODELS} is absent: the shared weight files are not beside this checkout")
    return SHARED_MODELS


def run_fetch_models(**options):
    out, err = io.StringIO(), io.StringIO()
    call_command("fetch_models", verbosity=0, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_it_installs_a_file_found_anywhere_under_the_source_folder(source, models_dir):
    weight = fake_weight()

    where = install(weight, models_dir, source=str(source), progress=False)

    assert where == str(source / "fake_model_v1" / "int8" / "fake-model.tflite")
    assert (models_dir / "fake-model.tflite").read_bytes() == DATA
    assert is_installed(weight, models_dir)
    assert sorted(p.name for p in models_dir.iterdir()) == ["fake-model.tflite"]


def test_it_installs_from_a_base_url(source, models_dir):
    base = (source / "fake_model_v1" / "int8").as_uri()

    where = install(fake_weight(), models_dir, source=base, progress=False)

    assert where == f"{base}/fake-model.tflite"
    assert (models_dir / "fake-model.tflite").read_bytes() == DATA


def test_it_refuses_a_file_with_the_wrong_checksum_and_leaves_nothing_behind(source, models_dir):
    weight = fake_weight(data=b"the file the catalog expects")

    with pytest.raises(FetchError) as raised:
        install(weight, models_dir, source=str(source), progress=False)

    message = str(raised.value)
    assert "fake-model.tflite" in message and "sha256" in message
    assert hashlib.sha256(DATA).hexdigest() in message and weight.sha256 in message
    assert not (models_dir / "fake-model.tflite").exists()
    assert list(models_dir.iterdir()) == []  # no .part file either
    assert not is_installed(weight, models_dir)


def test_it_says_which_file_is_missing_from_the_source_folder(source, models_dir):
    weight = fake_weight(filename="other-model.tflite")

    with pytest.raises(FetchError) as raised:
        install(weight, models_dir, source=str(source), progress=False)

    message = str(raised.value)
    assert "other-model.tflite is not in" in message
    assert str(source) in message and weight.url in message
    assert list(models_dir.iterdir()) == []


def test_it_says_when_the_source_is_not_a_folder(tmp_path, models_dir):
    with pytest.raises(FetchError, match="is not a folder"):
        install(fake_weight(), models_dir, source=str(tmp_path / "nowhere"), progress=False)


def test_a_file_with_the_right_size_but_wrong_content_is_not_installed(models_dir):
    models_dir.mkdir()
    (models_dir / "fake-model.tflite").write_bytes(DATA[:-1] + b"?")

    assert not is_installed(fake_weight(), models_dir)


def test_fetch_models_installs_every_model_from_the_shared_folder(settings, tmp_path):
    settings.SEGMENT_MODELS_DIR = tmp_path

    out, err = run_fetch_models(source=str(shared_models()))

    assert err == ""
    required = [MODELS[name] for name in required_model_names()]
    for spec in required:
        assert f"{spec.name}: installed {spec.weights.filename} from {shared_models()}" in out
        assert is_installed(spec.weights, tmp_path)
        assert spec.weights_status() == (True, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(s.weights.filename for s in required)
    assert "mask_rcnn_coco" not in out  # optional models only on request


def test_fetch_models_says_already_installed_on_a_second_run(settings, tmp_path):
    settings.SEGMENT_MODELS_DIR = tmp_path
    run_fetch_models(source=str(shared_models()))

    out, err = run_fetch_models(source=str(shared_models()))

    assert err == ""
    for name in required_model_names():
        assert f"{name}: {MODELS[name].weights.filename} already installed" in out
    assert ": installed " not in out


def test_fetch_models_installs_only_the_named_models(settings, tmp_path):
    settings.SEGMENT_MODELS_DIR = tmp_path

    out, _ = run_fetch_models(source=str(shared_models()), models="yolov8n_seg_coco")

    assert "yolov8n_seg_coco: installed" in out and "deeplabv3_mnv2_pascal" not in out
    assert [p.name for p in tmp_path.iterdir()] == [MODELS["yolov8n_seg_coco"].weights.filename]


def test_fetch_models_reports_a_file_missing_from_the_source_and_installs_the_rest(settings, tmp_path):
    settings.SEGMENT_MODELS_DIR = tmp_path
    deeplab_only = shared_models() / "deeplabv3_mnv2_pascal_quant_513"

    with pytest.raises(CommandError, match="1 model"):
        run_fetch_models(source=str(deeplab_only))

    assert is_installed(MODELS["deeplabv3_mnv2_pascal"].weights, tmp_path)
    assert not (tmp_path / MODELS["yolov8n_seg_coco"].weights.filename).exists()


def test_fetch_models_names_the_missing_file_on_stderr(settings, tmp_path):
    settings.SEGMENT_MODELS_DIR = tmp_path / "models"
    empty = tmp_path / "empty"
    empty.mkdir()
    err = io.StringIO()

    with pytest.raises(CommandError):
        call_command(
            "fetch_models",
            source=str(empty),
            models="yolov8n_seg_coco",
            verbosity=0,
            stdout=io.StringIO(),
            stderr=err,
        )

    assert f"yolov8n_seg_coco: yolov8n-seg_int8.tflite is not in {empty}" in err.getvalue()


def test_fetch_models_rejects_an_unknown_model_name(settings, tmp_path):
    settings.SEGMENT_MODELS_DIR = tmp_path

    with pytest.raises(CommandError, match="unknown model.*no_such_model"):
        run_fetch_models(models="deeplabv3_mnv2_pascal,no_such_model")

    assert list(tmp_path.iterdir()) == []


def test_fetch_models_installs_an_optional_model_from_a_folder_without_a_checksum(settings, tmp_path):
    settings.SEGMENT_MODELS_DIR = tmp_path / "models"
    source = tmp_path / "downloads" / "nested"
    source.mkdir(parents=True)
    (source / "mask_rcnn_coco.h5").write_bytes(b"checked layer by layer when a worker loads it")

    out, _ = run_fetch_models(source=str(tmp_path / "downloads"), models="mask_rcnn_coco")

    assert "mask_rcnn_coco: installed mask_rcnn_coco.h5" in out
    assert MODELS["mask_rcnn_coco"].weights_status() == (True, None)


def test_fetch_models_without_network_names_the_heavy_files_and_where_to_get_them(settings, tmp_path):
    settings.SEGMENT_MODELS_DIR = tmp_path
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 model"):
        call_command(
            "fetch_models",
            models="mask_rcnn_coco,deeplabv3plus_xception_pascal",
            source="http://127.0.0.1:9/nothing-listens-here",
            verbosity=0,
            stdout=io.StringIO(),
            stderr=err,
        )
    for name in ("mask_rcnn_coco", "deeplabv3plus_xception_pascal"):
        assert f"{name}: could not download {MODELS[name].weights.filename}" in err.getvalue()
