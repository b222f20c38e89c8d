"""docker-compose.yml and the Dockerfile, checked against the code they run.

No Docker engine runs where the tests do, so the compose file is held honest here: every
command must be a real entry point with options its program accepts, every queue must be
one the code routes to, every variable one the settings read, and the process set must be
the Procfile's.
"""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands, load_command_class
from django.urls import resolve
from gunicorn.config import Config

from core.repository import local_specs

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: service for name, service in SERVICES.items() if "build" in service}
MODEL_QUEUES = {spec.queue for spec in local_specs().values()}
# Queues whose workers load no model: deliveries, and everything beat schedules.
SERVICE_QUEUES = {settings.WEBHOOK_QUEUE, settings.HOUSEKEEPING_QUEUE}
# Variables read by libraries rather than by segsite/settings.py.
LIBRARY_VARIABLES = {"TF_FORCE_GPU_ALLOW_GROWTH"}


def option(command, name):
    return command[command.index(name) + 1] if name in command else None


def celery_workers():
    return {
        name: s["command"]
        for name, s in OURS.items()
        if s["command"][:4] == ["celery", "-A", "segsite", "worker"]
    }


def test_the_service_set_is_complete():
    expected = {
        "redis", "postgres", "seaweedfs", "create-bucket", "web", "proxy", "worker-light", "worker-heavy",
        "worker-io", "worker-housekeeping", "beat", "flower",
    }  # fmt: skip
    assert expected <= set(SERVICES)
    for name, service in SERVICES.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES and dependency != name, f"{name} depends on {dependency}"


def test_every_build_target_is_a_stage_of_the_dockerfile():
    stages = set(re.findall(r"^FROM \S+ AS (\w+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE))
    assert {"cpu", "gpu"} <= stages
    for name, service in OURS.items():
        assert service["build"]["target"] in stages, name
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = [
        name for line in re.findall(r"^COPY (.+) \S+$", dockerfile, re.MULTILINE) for name in line.split()
    ]
    assert {"requirements.txt", "requirements-heavy.txt", "requirements-heavy-nodeps.txt"} <= set(copied)
    assert all((REPO / name).is_file() for name in copied if name != ".")
    # The gpu stage swaps the CPU TensorFlow pin for the CUDA build: the pin must be there.
    assert re.search(r"^tensorflow-cpu==", (REPO / "requirements-heavy.txt").read_text(), re.MULTILINE)
    assert "s/^tensorflow-cpu==/tensorflow[and-cuda]==/" in dockerfile
    # ... and ONNX Runtime's for its GPU build, of the same version.
    assert re.search(r"^onnxruntime==", (REPO / "requirements.txt").read_text(), re.MULTILINE)
    assert "s/^onnxruntime==/onnxruntime-gpu==/p" in dockerfile


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_is_a_real_entry_point(name):
    command = OURS[name]["command"]
    program = command[0]
    if program == "python":
        assert command[1] == "manage.py" and command[2] in get_commands(), command
        # The command's own parser accepts the options given.
        load_command_class(get_commands()[command[2]], command[2]).create_parser(
            "manage.py", command[2]
        ).parse_args(command[3:])
    elif program == "gunicorn":
        assert command[1] == "segsite.wsgi" and (REPO / "segsite" / "wsgi.py").is_file()
        Config().parser().parse_args(command[1:])  # gunicorn's own parser: exits on a bad option
    elif program == "celery":
        assert command[1:3] == ["-A", "segsite"] and command[3] in ("worker", "beat"), command
    else:
        raise AssertionError(f"{name}: unknown program {program}")


def test_workers_consume_real_queues_and_every_model_has_one():
    consumed = {}
    for name, command in celery_workers().items():
        queues = set(option(command, "--queues").split(","))
        assert queues <= MODEL_QUEUES | SERVICE_QUEUES, name
        # The rules workers/signals.py enforces at start: webhooks and housekeeping each alone.
        assert not queues & SERVICE_QUEUES or len(queues) == 1, name
        if queues & SERVICE_QUEUES:
            assert option(command, "--pool") == "threads", name
        elif option(command, "--pool") == "threads":
            # A batching worker: enough jobs in flight to fill a batch (workers/batching.py).
            batch_max = SERVICES[name]["environment"]["BATCH_MAX"]
            default = int(re.fullmatch(r"\$\{BATCH_MAX:-(\d+)\}", batch_max).group(1))
            assert int(option(command, "--concurrency")) >= default, name
        else:
            assert option(command, "--concurrency") == "1", f"{name}: model workers run one job at a time"
        assert option(command, "--hostname").endswith("@%h"), f"{name}: needs a stable, unique node name"
        consumed[name] = queues
    assert set().union(*consumed.values()) == MODEL_QUEUES | SERVICE_QUEUES


def test_everything_beat_schedules_runs_on_the_housekeeping_worker_alone():
    """No delivery or job may hold up the reaper: every beat entry goes to the housekeeping
    queue, whose worker consumes nothing else and has a thread per entry, so that a long
    retention pass never makes the reaper's message wait past its expiry."""
    from segsite.celery import app

    app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, f"{name}: no task {entry['task']}"
        assert entry["options"]["queue"] == settings.HOUSEKEEPING_QUEUE, name
        assert entry["options"]["expires"] <= entry["schedule"], (
            f"{name}: a late pass is dropped, not doubled"
        )
    [(name, command)] = [
        (name, command)
        for name, command in celery_workers().items()
        if settings.HOUSEKEEPING_QUEUE in option(command, "--queues").split(",")
    ]
    assert option(command, "--queues") == settings.HOUSEKEEPING_QUEUE, name
    assert int(option(command, "--concurrency")) >= len(settings.CELERY_BEAT_SCHEDULE), name


def test_the_heavy_worker_reserves_a_gpu_and_runs_the_gpu_image_only_when_asked():
    heavy = SERVICES["worker-heavy"]
    assert heavy["build"]["target"] == "gpu"
    # Heavy weights make the heavy models the defaults: fetched only with the worker's profile.
    assert heavy["profiles"] == SERVICES["fetch-heavy-models"]["profiles"] == ["gpu"]
    assert "--all" not in SERVICES["fetch-models"]["command"]
    assert "fetch-heavy-models" in heavy["depends_on"]
    devices = heavy["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_every_variable_is_one_the_settings_read():
    source = (REPO / "segsite" / "settings.py").read_text()
    read = set(re.findall(r'env_\w+\(\s*"([A-Z0-9_]+)"', source))
    for name, service in OURS.items():
        for variable in service["environment"]:
            assert variable in read | LIBRARY_VARIABLES, f"{name}: {variable} is read by nothing"
    env = OURS["web"]["environment"]
    assert env["LOG_FORMAT"] in ("plain", "json")
    mounts = {volume.split(":")[1] for volume in OURS["web"]["volumes"]}
    assert env["SEGMENT_MODELS_DIR"] in mounts


def test_hosts_share_only_the_network_the_bucket_and_the_proxy():
    """Media in SeaweedFS's bucket (no media volume a second host could not see), made by
    create-bucket before anything runs; gunicorn reached only through nginx, which runs the
    very template `make run PROXY=nginx` does and is the one trusted proxy."""
    env = OURS["web"]["environment"]
    assert env["MEDIA_STORAGE"] == "s3" and "MEDIA_ROOT" not in env
    assert env["AWS_S3_ENDPOINT_URL"].startswith("http://seaweedfs:")
    assert SERVICES["create-bucket"]["command"] == ["python", "manage.py", "create_bucket"]
    for name, service in OURS.items():
        assert not any(volume.startswith("media:") for volume in service.get("volumes", [])), name
        if name not in ("migrate", "fetch-models", "fetch-heavy-models", "create-bucket"):
            assert "create-bucket" in service["depends_on"], name
    # The identity SeaweedFS is configured with is the one the app signs with.
    identity = json.loads(COMPOSE["configs"]["seaweedfs-s3"]["content"])["identities"][0]
    assert identity["credentials"][0]["accessKey"] == env["AWS_ACCESS_KEY_ID"]
    assert identity["credentials"][0]["secretKey"] == env["AWS_SECRET_ACCESS_KEY"]
    assert "-s3" in SERVICES["seaweedfs"]["command"]

    assert "ports" not in SERVICES["web"] and env["TRUSTED_PROXIES"] == 1
    proxy = SERVICES["proxy"]
    template = "./deploy/nginx/segment.conf.template"
    assert f"{template}:/etc/nginx/templates/default.conf.template:ro" in proxy["volumes"]
    text = (REPO / template).read_text()
    # Every ${VARIABLE} of the template has a value in the proxy's environment.
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(proxy["environment"])
    bind = option(OURS["web"]["command"], "--bind").rsplit(":", 1)[1]
    assert proxy["environment"]["SEGMENT_UPSTREAM"] == f"web:{bind}"
    assert "proxy_request_buffering on;" in text


def test_healthchecks_call_real_urls():
    check = " ".join(SERVICES["web"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:8000(/\w+)", check).group(1)
    assert resolve(path).url_name in ("healthz", "readyz")


def test_the_procfile_runs_the_same_processes():
    procfile = dict(
        line.split(": ", 1) for line in (REPO / "Procfile").read_text().splitlines() if line.strip()
    )
    assert set(procfile) == {"web", "worker", "io", "housekeeping", "beat", "proxy"}
    assert "deploy/nginx/run_local.py" in procfile["proxy"]
    pairs = {"worker": "worker-light", "io": "worker-io", "housekeeping": "worker-housekeeping"}
    for process, service in pairs.items():
        local = shlex.split(procfile[process].replace("$VENV/bin/", ""))
        assert option(local, "--queues") == option(SERVICES[service]["command"], "--queues")
        assert option(local, "--pool") == option(SERVICES[service]["command"], "--pool")
    housekeeping = shlex.split(procfile["housekeeping"])
    assert option(housekeeping, "--concurrency") == option(
        SERVICES["worker-housekeeping"]["command"], "--concurrency"
    )
    # `make run` starts every process of the Procfile but the optional proxy.
    started = re.search(r"^PROCESSES = (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE).group(1)
    assert set(started.split()) == set(procfile) - {"proxy"}
    web = shlex.split(procfile["web"].replace("$VENV/bin/", ""))
    assert web[:2] == OURS["web"]["command"][:2]
    assert option(web, "--worker-class") == option(OURS["web"]["command"], "--worker-class") == "gthread"
    assert "--no-control-socket" in web and "--no-control-socket" in OURS["web"]["command"]


def test_the_readme_documents_scaling_the_light_workers():
    assert "docker compose up --scale worker-light=4" in (REPO / "README.md").read_text()


def test_model_workers_get_time_to_finish_their_job_when_stopped():
    for name, command in celery_workers().items():
        if option(command, "--queues") not in SERVICE_QUEUES:
            grace = OURS[name]["stop_grace_period"]
            assert int(grace.rstrip("s")) >= settings.CELERY_TASK_TIME_LIMIT, name


def test_settings_reach_the_containers_and_flower_stays_local():
    for name, service in OURS.items():
        assert {"path": ".env", "required": False} in service["env_file"], name
    assert all(port.startswith("127.0.0.1:") for port in SERVICES["flower"]["ports"])


def test_flower_is_protected_and_sees_tasks_on_the_services_broker():
    flower = " ".join(SERVICES["flower"]["command"])
    assert "--basic-auth=${FLOWER_BASIC_AUTH:?" in flower
    assert f"--broker={OURS['web']['environment']['CELERY_BROKER_URL']}" in flower
    assert settings.CELERY_WORKER_SEND_TASK_EVENTS and settings.CELERY_TASK_SEND_SENT_EVENT
