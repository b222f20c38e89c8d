"""Models added by their folder alone, served by a real worker to a web host that has no
model folder at all: the shipped models, the matte task, and networks built at test time.

The worker's repository is a copy of the shipped light folders plus the tiny networks that
tests/fixtures/tiny_models.py builds now (a Keras network exported to .tflite and, through
tf2onnx, to .onnx). No code knows them: the worker finds their folders, announces their
specs, and the web host learns everything (labels, task, queue) from that announcement.
"""

import io
import shutil

import numpy as np
import pytest
import requests
from PIL import Image

from core.repository import scan
from tests.conftest import eval_photo, light_specs
from tests.fixtures.repository import copy_models

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TINY = ["tiny_matte_onnx", "tiny_matte_tflite", "tiny_semantic_onnx"]


@pytest.fixture(scope="module")
def repository(tmp_path_factory, tiny_models):
    folder = copy_models(tmp_path_factory.mktemp("repository"), [spec.name for spec in light_specs()])
    for name in TINY:
        shutil.copytree(tiny_models / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def worker(start_worker, repository):
    return start_worker("custom", env={"SEGMENT_MODELS_DIR": str(repository)})


@pytest.fixture
def bare_web(settings, tmp_path):
    """The live server's process with an empty SEGMENT_MODELS_DIR: no spec, no weights."""
    settings.SEGMENT_MODELS_DIR = tmp_path / "empty"
    settings.SEGMENT_MODELS_DIR.mkdir()


def fetch(url):
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


def run(client, photo, task, model, filename="photo.png"):
    job = client.wait(client.submit(photo, filename, task=task, model=model).headers["Location"])
    assert job["status"] == "succeeded", job["error"]
    return job


def test_a_web_host_without_model_folders_lists_and_runs_every_model_the_worker_serves(
    worker, bare_web, client, repository, figure
):
    specs = scan(repository).specs
    listed = {m["name"]: m for m in client.get("/api/v1/models/").json()["models"]}
    assert set(listed) == set(specs)
    for name, spec in specs.items():
        assert listed[name]["task"] == spec.task and listed[name]["labels"] == list(spec.labels)
        assert listed[name]["licence"] == spec.licence and listed[name]["available"]
        assert [w.split("@")[0] for w in listed[name]["workers"]] == ["custom"]

    photo = eval_photo("photos/astronaut.jpg").read_bytes()
    jobs = {name: run(client, photo, spec.task, name, "astronaut.jpg") for name, spec in specs.items()}
    figure(
        f"empty SEGMENT_MODELS_DIR on the web host: {len(jobs)} models listed and run through one worker, "
        f"{sum(j['status'] == 'succeeded' for j in jobs.values())} succeeded"
    )

    # The matte task with the shipped selfie model, added by its folder alone.
    selfie = jobs["selfie_segmentation_mediapipe"]
    assert set(selfie["result"]["files"]) == {"alpha"}
    alpha = fetch(selfie["result"]["files"]["alpha"])
    assert alpha.size == (512, 512) and alpha.mode == "L"
    above = (np.asarray(alpha) > 127).mean()
    assert above > 0.40
    assert selfie["result"]["summary"]["foreground_fraction"] == pytest.approx(above, abs=1e-6)
    figure(f"selfie matte on astronaut.jpg: alpha.png 512x512 L, {above:.1%} of pixels above 127")


def raw_output(repository, name, rgb):
    """The model file run directly by its own runtime on a 64x64 photo: no spec, no fitting
    (the input is already the network's size, so the spec's fit must leave it as it is)."""
    spec = scan(repository).specs[name]
    tensor = (rgb.astype(np.float32) / 255.0)[None]
    if spec.runtime == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(spec.weights_path()))
        return session.run(None, {session.get_inputs()[0].name: tensor})[0][0]
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(spec.weights_path()))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]


@pytest.mark.parametrize("name", TINY)
def test_a_network_built_now_is_served_as_its_own_runtime_runs_it(worker, bare_web, client, repository, name):
    photo = Image.open(eval_photo("photos/astronaut.jpg")).convert("RGB").resize((64, 64), Image.BILINEAR)
    rgb = np.asarray(photo)
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    task = scan(repository).specs[name].task

    job = run(client, buffer.getvalue(), task, name)
    raw = raw_output(repository, name, rgb)

    if task == "matte":
        served = np.asarray(fetch(job["result"]["files"]["alpha"]), dtype=np.float32) / 255.0
        assert served.shape == (64, 64)
        assert np.abs(served - raw[..., 0]).max() <= 1 / 255  # 8 bits: within one level
        assert raw.std() > 0.05  # a varied matte, so the comparison means something
    else:
        served = np.asarray(fetch(job["result"]["files"]["mask"]))
        assert (served == raw.argmax(axis=-1)).all()  # the class map, identical
        assert len(np.unique(served)) >= 2
