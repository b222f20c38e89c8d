import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from core.repository import scan
from core.specs import load_spec
from tests.fixtures.repository import copy_models
from workers.weights import FetchError, install, weights_problem

SHARED_MODELS = Path(__file__).resolve().parents[3] / "shared" / "models"
DATA = b"pretend these are int8 weights\n" * 100
LIGHT = [
    "deeplabv3_mnv2_dm05_pascal",
    "deeplabv3_mnv2_pascal",
    "selfie_segmentation_mediapipe",
    "yolov8n_seg_coco",
]


def fake_spec(folder, data=DATA, filename="fake-model.tflite"):
    """A model folder holding only its spec, for a weight file of these bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.toml").write_text(
        f"""task = "semantic"
runtime = "litert"
labels = ["background", "thing"]
[weights]
file = "{filename}"
sha256 = "{hashlib.sha256(data).hexdigest()}"
size = {len(data)}
url = "https://example.invalid/{filename}"
licence = "test only"
[input]
size = [8, 8]
[output]
decoder = "class_ids"
"""
    )
    return load_spec(folder)


@pytest.fixture
def source(tmp_path):
    """A publisher-style archive: the weight file two folders deep."""
    folder = tmp_path / "source"
    nested = folder / "fake_model_v1" / "int8"
    nested.mkdir(parents=True)
    (nested / "fake-model.tflite").write_bytes(DATA)
    return folder


@pytest.fixture
def model_folder(tmp_path):
    return tmp_path / "models" / "fake_model"


def shared_models():
    """The real weight files from ../shared/models; skip where that folder is absent."""
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"{SHARED_MODELS} is absent: the shared weight files are not beside this checkout")
    return SHARED_MODELS


@pytest.fixture
def bare_repository(settings, tmp_path):
    """SEGMENT_MODELS_DIR holding every shipped spec and no weights."""
    settings.SEGMENT_MODELS_DIR = copy_models(tmp_path / "repo", weights=False)
    return settings.SEGMENT_MODELS_DIR


def weight_files(repository):
    return sorted(
        p.relative_to(repository).as_posix() for p in repository.rglob("*") if p.suffix in (".tflite", ".h5")
    )


def run_fetch_models(**options):
    out, err = io.StringIO(), io.StringIO()
    call_command("fetch_models", verbosity=0, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_it_installs_a_file_found_anywhere_under_the_source_folder_into_the_models_folder(
    source, model_folder
):
    spec = fake_spec(model_folder)

    where = install(spec, source=str(source), progress=False)

    assert where == str(source / "fake_model_v1" / "int8" / "fake-model.tflite")
    assert (model_folder / "fake-model.tflite").read_bytes() == DATA
    assert weights_problem(spec) is None
    assert sorted(p.name for p in model_folder.iterdir()) == ["fake-model.tflite", "model.toml"]


def test_it_installs_from_a_base_url(source, model_folder):
    base = (source / "fake_model_v1" / "int8").as_uri()

    where = install(fake_spec(model_folder), source=base, progress=False)

    assert where == f"{base}/fake-model.tflite"
    assert (model_folder / "fake-model.tflite").read_bytes() == DATA


def test_it_refuses_a_file_with_the_wrong_checksum_and_leaves_nothing_behind(source, model_folder):
    spec = fake_spec(model_folder, data=b"the file the spec expects")

    with pytest.raises(FetchError) as raised:
        install(spec, source=str(source), progress=False)

    message = str(raised.value)
    assert "fake-model.tflite" in message and "sha256" in message
    assert hashlib.sha256(DATA).hexdigest() in message and spec.weights.sha256 in message
    assert [p.name for p in model_folder.iterdir()] == ["model.toml"]  # no .part file either
    assert "is missing" in weights_problem(spec)


def test_it_says_which_file_is_missing_from_the_source_folder(source, model_folder):
    spec = fake_spec(model_folder, filename="other-model.tflite")

    with pytest.raises(FetchError) as raised:
        install(spec, source=str(source), progress=False)

    message = str(raised.value)
    assert "other-model.tflite is not in" in message
    assert str(source) in message and spec.weights.url in message
    assert [p.name for p in model_folder.iterdir()] == ["model.toml"]


def test_it_says_when_the_source_is_not_a_folder(tmp_path, model_folder):
    with pytest.raises(FetchError, match="is not a folder"):
        install(fake_spec(model_folder), source=str(tmp_path / "nowhere"), progress=False)


def test_a_file_with_the_right_size_but_wrong_content_is_named_with_both_digests(model_folder):
    spec = fake_spec(model_folder)
    broken = DATA[:-1] + b"?"
    (model_folder / "fake-model.tflite").write_bytes(broken)

    problem = weights_problem(spec)

    assert f"sha256 {hashlib.sha256(broken).hexdigest()}" in problem
    assert f"weights.sha256 says {spec.weights.sha256}" in problem


def test_a_file_of_the_wrong_size_is_named_with_both_sizes(model_folder):
    spec = fake_spec(model_folder)
    (model_folder / "fake-model.tflite").write_bytes(DATA + b"!")

    assert weights_problem(spec).endswith(f"has {len(DATA) + 1} bytes; weights.size says {len(DATA)}")


def test_fetch_models_installs_every_model_from_the_shared_folder(bare_repository):
    out, err = run_fetch_models(source=str(shared_models()))

    assert err == ""
    specs = scan(bare_repository).specs
    for name in LIGHT:
        assert f"{name}: installed {specs[name].weights.file} from {shared_models()}" in out
        assert weights_problem(specs[name]) is None
    assert weight_files(bare_repository) == sorted(f"{name}/{specs[name].weights.file}" for name in LIGHT)
    assert "mask_rcnn_coco" not in out  # optional models only on request


def test_fetch_models_says_already_installed_on_a_second_run(bare_repository):
    run_fetch_models(source=str(shared_models()))

    out, err = run_fetch_models(source=str(shared_models()))

    assert err == ""
    specs = scan(bare_repository).specs
    for name in LIGHT:
        assert f"{name}: {specs[name].weights.file} already installed" in out
    assert ": installed " not in out


def test_fetch_models_installs_only_the_named_models(bare_repository):
    out, _ = run_fetch_models(source=str(shared_models()), models="yolov8n_seg_coco")

    assert "yolov8n_seg_coco: installed" in out and "deeplabv3_mnv2_pascal" not in out
    assert weight_files(bare_repository) == ["yolov8n_seg_coco/yolov8n-seg_int8.tflite"]


def test_fetch_models_reports_a_file_missing_from_the_source_and_installs_the_rest(bare_repository):
    deeplab_only = shared_models() / "deeplabv3_mnv2_pascal_quant_513"

    with pytest.raises(CommandError, match="3 model"):
        run_fetch_models(source=str(deeplab_only))

    assert weight_files(bare_repository) == ["deeplabv3_mnv2_pascal/deeplabv3_mnv2_pascal_quant.tflite"]


def test_fetch_models_names_the_missing_file_on_stderr(bare_repository, tmp_path):
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


def test_fetch_models_rejects_an_unknown_model_name(bare_repository):
    with pytest.raises(CommandError, match="unknown model.*no_such_model"):
        run_fetch_models(models="deeplabv3_mnv2_pascal,no_such_model")

    assert weight_files(bare_repository) == []


def test_fetch_models_installs_an_optional_model_from_a_folder_without_a_checksum(bare_repository, tmp_path):
    source = tmp_path / "downloads" / "nested"
    source.mkdir(parents=True)
    (source / "mask_rcnn_coco.h5").write_bytes(b"checked layer by layer when a worker loads it")

    out, _ = run_fetch_models(source=str(tmp_path / "downloads"), models="mask_rcnn_coco")

    assert "mask_rcnn_coco: installed mask_rcnn_coco.h5" in out
    assert weights_problem(scan(bare_repository).specs["mask_rcnn_coco"]) is None


def test_fetch_models_without_network_names_the_heavy_files_and_where_to_get_them(bare_repository):
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
    specs = scan(bare_repository).specs
    for name in ("mask_rcnn_coco", "deeplabv3plus_xception_pascal"):
        assert f"{name}: could not download {specs[name].weights.file}" in err.getvalue()


def test_fetch_models_skips_a_folder_whose_spec_is_broken_and_says_why(bare_repository):
    (bare_repository / "broken").mkdir()
    (bare_repository / "broken" / "model.toml").write_text('task = "panoptic"\n')

    out, err = run_fetch_models(source=str(shared_models()), models="yolov8n_seg_coco")

    assert "broken: skipped, its spec is broken" in err and "task is 'panoptic'" in err
    assert "yolov8n_seg_coco: installed" in out
