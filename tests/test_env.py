import json
import os
import re
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from segsite.env import env_bool, env_int, env_list
from tests.conftest import REPO

NAME = "SEGMENT_TEST_SETTING"


@pytest.mark.parametrize("value", ["1", "true", "True", "YES", "on", " true "])
def test_env_bool_reads_true(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert env_bool(NAME, default=False) is True


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "off", ""])
def test_env_bool_reads_false(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    assert env_bool(NAME, default=True) is False


def test_env_bool_falls_back_to_its_default_when_unset(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    assert env_bool(NAME, default=True) is True
    assert env_bool(NAME) is False


@pytest.mark.parametrize("value", ["maybe", "2", "y"])
def test_env_bool_rejects_anything_else_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}='{value}' is not a boolean"):
        env_bool(NAME)


def test_env_int_reads_an_integer(monkeypatch):
    monkeypatch.setenv(NAME, " 4096 ")
    assert env_int(NAME, 10, minimum=1024) == 4096


@pytest.mark.parametrize("value", [None, ""])
def test_env_int_falls_back_to_its_default_when_unset_or_empty(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, value)
    assert env_int(NAME, 300) == 300


@pytest.mark.parametrize("value", ["20MB", "1.5", "ten"])
def test_env_int_rejects_a_non_integer_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}='{value}' is not an integer"):
        env_int(NAME, 10)


def test_env_int_rejects_a_value_below_its_minimum_naming_the_variable(monkeypatch):
    monkeypatch.setenv(NAME, "9")
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}=9 is below its minimum 10"):
        env_int(NAME, 300, minimum=10)
    monkeypatch.setenv(NAME, "10")
    assert env_int(NAME, 300, minimum=10) == 10


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv(NAME, " example.com,, api.example.com ,")
    assert env_list(NAME) == ["example.com", "api.example.com"]


def test_env_list_falls_back_to_a_copy_of_its_default_when_unset(monkeypatch):
    monkeypatch.delenv(NAME, raising=False)
    default = ("localhost", "127.0.0.1")
    assert env_list(NAME, default) == ["localhost", "127.0.0.1"]
    assert env_list(NAME) == []


def start_django(**env):
    """Run django.setup() on the production settings in a fresh process with this environment."""
    environ = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    environ.update(DJANGO_SETTINGS_MODULE="segsite.settings", **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_refuse_to_load_without_a_secret_key_when_debug_is_off(tmp_path):
    started = start_django(DEBUG="false", SECRET_KEY_FILE=str(tmp_path / "absent"))

    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr and "SECRET_KEY is not set" in started.stderr
    assert str(tmp_path / "absent") in started.stderr


def test_settings_take_the_secret_key_from_its_file_when_the_variable_is_unset(tmp_path):
    (tmp_path / "secret").write_text("a-secret-from-a-file\n")
    command = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    environ = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    environ.update(DJANGO_SETTINGS_MODULE="segsite.settings", SECRET_KEY_FILE=str(tmp_path / "secret"))
    shown = subprocess.run(
        [sys.executable, "-c", command], cwd=REPO, env=environ, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "a-secret-from-a-file"


def test_settings_load_without_a_secret_key_in_debug():
    started = start_django(DEBUG="true")

    assert started.returncode == 0, started.stderr


def test_settings_refuse_a_malformed_variable_naming_it():
    started = start_django(DEBUG="true", MAX_UPLOAD_BYTES="20MB")

    assert started.returncode != 0
    assert "MAX_UPLOAD_BYTES='20MB' is not an integer" in started.stderr


def test_an_empty_list_variable_means_unset_not_empty(monkeypatch):
    from segsite.env import env_list

    monkeypatch.setenv("SOME_HOSTS", "")
    assert env_list("SOME_HOSTS", ["localhost"]) == ["localhost"]


def test_env_int_list_reads_comma_separated_integers(monkeypatch):
    from segsite.env import env_int_list

    monkeypatch.setenv(NAME, "5, 300,1800")
    assert env_int_list(NAME, [1]) == [5, 300, 1800]
    monkeypatch.setenv(NAME, "")
    assert env_int_list(NAME, [1, 2]) == [1, 2]


@pytest.mark.parametrize(
    "value, problem", [("5,soon", "'soon' is not an integer"), ("5,-1", "below its minimum")]
)
def test_env_int_list_refuses_bad_items_by_name(monkeypatch, value, problem):
    from segsite.env import env_int_list

    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}: .*{problem}"):
        env_int_list(NAME, [], minimum=0)


def test_env_host_port_list_reads_one_port_per_entry(monkeypatch):
    from segsite.env import env_host_port_list

    monkeypatch.setenv(NAME, " 127.0.0.1:9000, Hooks.Example.com:8443,[::1]:80 ")
    assert env_host_port_list(NAME) == ["127.0.0.1:9000", "hooks.example.com:8443", "[::1]:80"]
    monkeypatch.setenv(NAME, "")
    assert env_host_port_list(NAME) == []


@pytest.mark.parametrize(
    "value", ["127.0.0.1", "localhost:", "localhost:http", "host:0", "host:65536", "::1:80", ":80"]
)
def test_env_host_port_list_refuses_an_entry_without_one_port_by_name(monkeypatch, value):
    """A bare host would mean every port of it, its database's and admin's too."""
    from segsite.env import env_host_port_list

    monkeypatch.setenv(NAME, f"127.0.0.1:9000,{value}")
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}: '{value}' is not host:port"):
        env_host_port_list(NAME)


def test_env_origin_list_reads_web_origins(monkeypatch):
    from segsite.env import env_origin_list

    monkeypatch.setenv(NAME, " https://App.example.com, http://localhost:5173 ")
    assert env_origin_list(NAME) == ["https://app.example.com", "http://localhost:5173"]


@pytest.mark.parametrize(
    "value",
    ["app.example.com", "https://app.example.com/", "https://app.example.com/page", "*", "ftp://x.org"],
)
def test_env_origin_list_refuses_what_no_browser_sends_as_an_origin(monkeypatch, value):
    from segsite.env import env_origin_list

    monkeypatch.setenv(NAME, value)
    with pytest.raises(ImproperlyConfigured, match=f"{NAME}: '{re.escape(value)}' is not an origin"):
        env_origin_list(NAME)


def test_the_webhook_settings_read_their_variables():
    read = settings_of(
        [
            "WEBHOOK_ALLOWED_HOSTS",
            "WEBHOOK_ALLOWED_PORTS",
            "WEBHOOK_DNS_TIMEOUT",
            "WEBHOOK_CONCURRENCY_PER_USER",
        ],
        WEBHOOK_ALLOWED_HOSTS="127.0.0.1:9000",
        WEBHOOK_ALLOWED_PORTS="443,8443",
        WEBHOOK_DNS_TIMEOUT="3",
        WEBHOOK_CONCURRENCY_PER_USER="4",
    )
    assert read == {
        "WEBHOOK_ALLOWED_HOSTS": ["127.0.0.1:9000"],
        "WEBHOOK_ALLOWED_PORTS": [443, 8443],
        "WEBHOOK_DNS_TIMEOUT": 3,
        "WEBHOOK_CONCURRENCY_PER_USER": 4,
    }
    defaults = settings_of(["WEBHOOK_ALLOWED_HOSTS", "WEBHOOK_ALLOWED_PORTS"])
    assert defaults == {"WEBHOOK_ALLOWED_HOSTS": [], "WEBHOOK_ALLOWED_PORTS": [80, 443]}


def settings_of(names, **env):
    """Some settings as a fresh process with this environment loads them."""
    command = "import django, json; django.setup(); from django.conf import settings as s; " + (
        f"print(json.dumps({{n: getattr(s, n, None) for n in {names!r}}}))"
    )
    environ = {k: v for k, v in os.environ.items() if k not in ("DEBUG",)}
    environ.update(DJANGO_SETTINGS_MODULE="segsite.settings", **env)
    shown = subprocess.run(
        [sys.executable, "-c", command], cwd=REPO, env=environ, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout.strip().splitlines()[-1])


def test_a_trusted_proxy_count_sets_the_forwarded_headers_to_trust():
    behind = settings_of(["SECURE_PROXY_SSL_HEADER", "REST_FRAMEWORK"], TRUSTED_PROXIES="2")
    assert behind["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert behind["REST_FRAMEWORK"]["NUM_PROXIES"] == 2
    direct = settings_of(["SECURE_PROXY_SSL_HEADER", "REST_FRAMEWORK"])
    assert direct["SECURE_PROXY_SSL_HEADER"] is None and direct["REST_FRAMEWORK"]["NUM_PROXIES"] == 0


def test_check_deploy_is_clean_with_the_production_variables_the_readme_lists():
    environ = {k: v for k, v in os.environ.items() if k not in ("DEBUG",)}
    environ.update(
        DJANGO_SETTINGS_MODULE="segsite.settings",
        SECRET_KEY="a-production-secret-" + "x" * 50,
        DEBUG="false",
        ALLOWED_HOSTS="segment.example.com",
        TRUSTED_PROXIES="1",
        SECURE_SSL_REDIRECT="true",
        SECURE_COOKIES="true",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
    )
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


def mode(path):
    return path.stat().st_mode & 0o777


def test_the_files_holding_secrets_are_made_readable_by_their_owner_only(tmp_path):
    """The SQLite database (tokens, webhook secrets), the checkout's secret and the media."""
    database = tmp_path / "db.sqlite3"
    started = start_django(SECRET_KEY="x" * 50, DATABASE_URL=f"sqlite:///{database}")
    assert started.returncode == 0, started.stderr
    assert mode(database) == 0o600

    (tmp_path / "Makefile").write_text((REPO / "Makefile").read_text())
    made = subprocess.run(
        ["make", "-s", ".secret_key"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    assert (
        mode(tmp_path / ".secret_key") == 0o600 and len((tmp_path / ".secret_key").read_text().strip()) > 40
    )


def test_stored_files_and_their_folders_are_the_services_own(settings, tmp_path):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    settings.MEDIA_ROOT = tmp_path / "media"
    name = default_storage.save("jobs/some-job/mask.png", ContentFile(b"\x89PNG"))
    assert mode(tmp_path / "media" / name) == 0o600
    assert mode(tmp_path / "media" / "jobs" / "some-job") == 0o700
