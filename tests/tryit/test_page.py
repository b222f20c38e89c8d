"""The page at / as the web process serves it: the HTML, and its assets from our own files.

The browser test (tests/e2e/test_try_page.py) drives the page itself against a live server.
"""

import re

from django.core.management import call_command
from django.test import Client

ASSETS = ("/static/tryit/try.js", "/static/tryit/try.css")


def test_the_page_at_the_root_loads_its_script_and_style_from_our_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    for asset in ASSETS:
        assert f'"{asset}"' in html
    # No CDN, no other origin: every src and href is a path of this site.
    assert not [url for url in re.findall(r'(?:src|href)="([^"]*)"', html) if not url.startswith("/")]
    # The API paths the script talks to come from the URL configuration.
    assert 'data-jobs-url="/api/v1/jobs/"' in html and 'data-models-url="/api/v1/models/"' in html


def test_the_page_lets_no_script_but_ours_run(client):
    policy = client.get("/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy


def test_a_post_to_the_page_is_a_json_405(client):
    response = client.post("/")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_gunicorn_serves_the_collected_assets_through_whitenoise(settings, tmp_path):
    """As `make run` and production serve them (nginx passes /static/ on to gunicorn):
    collectstatic (make setup, the Dockerfile) copies them into STATIC_ROOT, and WhiteNoise,
    in the WSGI application gunicorn runs, answers them."""
    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", interactive=False, verbosity=0)
    served = Client()  # a fresh handler: its WhiteNoise reads this STATIC_ROOT
    for asset in ASSETS:
        response = served.get(asset)
        assert response.status_code == 200, asset
        assert "max-age" in response["Cache-Control"]  # WhiteNoise's, not a view's
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert body == (tmp_path / "static" / asset.removeprefix("/static/")).read_bytes()
