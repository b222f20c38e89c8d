"""The README's shell commands, run as a newcomer types them in a fresh shell.

Every command line of the README's ```sh blocks is either run here or listed in SKIPPED
with the reason, so a command added to the README cannot go unchecked. The commands run
with `bash -c` in the checkout, in an environment holding only PATH, HOME, LANG, a
DATABASE_URL to a fresh SQLite file and a MEDIA_ROOT in a temporary folder: no
SECRET_KEY, so the `.secret_key` that `make setup` wrote is what the settings must find
(segsite/settings.py falls back to it; without that fallback every command here fails).
The only rewrite is `--out results/` to a temporary folder, so that the checkout's
`results/` is left alone.
"""

import os
import re
import shlex
import subprocess

import pytest

from tests.conftest import REPO, eval_photo

README = REPO / "README.md"
EVAL_PREFIX = "../shared/eval/"

# Lines that start so are run (the manage.py commands that need no live server).
RUN_PREFIXES = (".venv/bin/python manage.py ", "TOKEN=$(.venv/bin/python manage.py ")

# (prefix, why it is not run). Checked first, so a manage.py command can be listed here.
SKIPPED = [
    ("make setup", "builds the checkout this test runs in (.venv, .secret_key, weights, migrations)"),
    ("make test", "the whole suite: running it from inside the suite would recurse"),
    ("make bench", "about 5 minutes with private PostgreSQL, Redis, gunicorn and workers of its own"),
    ("make run", "starts the live server, workers and beat, and runs until stopped"),
    ("curl ", "talks to a live server on 127.0.0.1:8000"),
    ("SECRET=$(curl ", "reads the webhook secret from a live server on 127.0.0.1:8000"),
    (
        ".venv/bin/python manage.py webhook_receiver ",
        "a server that runs until stopped, with the secret read from the live server",
    ),
    (
        ".venv/bin/python manage.py fetch_models --all",
        "downloads the heavy models' weights (about 420 MB) from PixelLib's GitHub releases",
    ),
    (
        ".venv/bin/python manage.py fetch_models --models mask_rcnn_coco --source ~/Downloads",
        "needs mask_rcnn_coco.h5, downloaded by hand into ~/Downloads",
    ),
    (
        ".venv/bin/celery -A segsite worker ",
        "a heavy model's worker: runs until stopped, needs Redis and its weights",
    ),
    ('echo "SECRET_KEY=', "writes .env into the checkout (for docker compose)"),
    ('echo "S3_SECRET_KEY=', "writes .env into the checkout (for docker compose)"),
    ('echo "FLOWER_BASIC_AUTH=', "writes .env into the checkout (for docker compose)"),
    ("docker compose ", "needs a Docker engine, which the test machines do not have"),
    (
        ".venv/bin/weed server ",
        "a SeaweedFS that runs until stopped (the suite starts its own: tests/fixtures)",
    ),
    ("export MEDIA_STORAGE=s3 ", "sets the shell up for the two processes below, against that SeaweedFS"),
    ("MEDIA_ROOT=/tmp/worker-media ", "a worker that runs until stopped (tests/e2e/test_separate_hosts.py)"),
    (
        "MEDIA_ROOT=/tmp/web-media ",
        "a web process that runs until stopped (tests/e2e/test_separate_hosts.py)",
    ),
]

TOKEN = re.compile(r"[0-9a-f]{40}")


def readme_commands(text):
    """Every command line of the ```sh blocks, continuations joined, comment lines left out."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.rstrip().endswith("\\"):
                pending += line.strip()[:-1].rstrip() + " "
                continue
            commands.append(pending + line.strip())
            pending = ""
        assert not pending, f"a ```sh block ends inside a continued line: {pending!r}"
    return commands


COMMANDS = readme_commands(README.read_text())


def skip_reason(command):
    return next((why for prefix, why in SKIPPED if command.startswith(prefix)), None)


def is_run(command):
    return skip_reason(command) is None and command.startswith(RUN_PREFIXES)


RUN = [command for command in COMMANDS if is_run(command)]


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    assert COMMANDS, "no ```sh block found in README.md"
    unchecked = [c for c in COMMANDS if not is_run(c) and skip_reason(c) is None]
    assert not unchecked, (
        f"README commands neither run by this test nor listed in SKIPPED with a reason: {unchecked}"
    )
    stale = [prefix for prefix, _ in SKIPPED if not any(c.startswith(prefix) for c in COMMANDS)]
    assert not stale, f"SKIPPED entries that match no README command any more: {stale}"
    assert any(c.startswith("TOKEN=$(") for c in RUN), "the README no longer shows how to get a token"


@pytest.fixture(scope="module")
def fresh_shell(tmp_path_factory):
    """The environment of a fresh shell in the checkout, and a migrated database for it."""
    assert (REPO / ".secret_key").is_file(), (
        "no .secret_key in the checkout: run `make setup` first, as the README says"
    )
    root = tmp_path_factory.mktemp("readme")
    (root / "media").mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(root)),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
        "MEDIA_ROOT": str(root / "media"),
    }
    migrated = _bash(".venv/bin/python manage.py migrate --noinput", env)
    assert migrated.returncode == 0, _output(migrated)
    return env, root


def _bash(command, env):
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def _output(done):
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"


def _needs_eval_photos(command):
    """Skip (through eval_photo, saying why) where the shared photos are absent."""
    for word in shlex.split(command):
        if word.startswith(EVAL_PREFIX):
            relative = word[len(EVAL_PREFIX) :]
            if "*" in relative:  # a glob: the folder it reads must be there and match
                folder, pattern = relative.rsplit("/", 1)
                if not any((REPO / EVAL_PREFIX / folder).glob(pattern)):
                    eval_photo(relative)  # skips, naming the path
            else:
                eval_photo(relative)


@pytest.mark.parametrize("command", RUN)
def test_readme_command_runs_in_a_fresh_shell(command, fresh_shell, tmp_path):
    env, _ = fresh_shell
    _needs_eval_photos(command)
    assert "SECRET_KEY" not in env
    if command.startswith("TOKEN=$("):
        done = _bash(f'{command} && echo "$TOKEN"', env)
        assert done.returncode == 0, _output(done)
        assert TOKEN.fullmatch(done.stdout.strip()), _output(done)
        return
    out = tmp_path / "results"
    runnable = command.replace("--out results/", f"--out {out}/")
    done = _bash(runnable, env)
    assert done.returncode == 0, _output(done)
    if runnable != command:
        assert any(out.iterdir()), f"{command} wrote nothing into --out"
