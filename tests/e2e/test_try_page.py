"""The page at / in a real browser: Chromium, driven by Playwright, against the live server
and a real light worker, as a person tries the service.

Chromium is the distribution's (/usr/bin/chromium, `make setup` installs it); Playwright's own
browser downloads cannot work here. Every wait has a deadline.
"""

import os
import time
from pathlib import Path

import pytest
import requests
from PIL import Image
from rest_framework.authtoken.models import Token

from tests.conftest import REPO, eval_photo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
# A person's phone-to-laptop width; the page is one column at any width.
VIEWPORT = {"width": 820, "height": 1000}
# Long enough for a cold live server and worker, short enough to fail rather than hang.
STEP_MS = 30_000
RESULT_MS = 60_000
# The README's copy of the screenshot, rewritten only when asked: a normal run leaves the tree alone.
DOC_SCREENSHOT = REPO / "docs" / "images" / "try-page.png"


@pytest.fixture(scope="module")
def worker(start_worker):
    worker = start_worker("try-page")
    yield worker
    worker.stop()  # no other module's jobs may land on this worker


@pytest.fixture
def token(transactional_db, django_user_model):
    """A real API token, made before the browser starts: Playwright's sync API keeps an
    event loop running in this thread, where Django refuses database calls."""
    user = django_user_model.objects.create_user(username="browser-user")
    return Token.objects.create(user=user).key


@pytest.fixture
def page(live_server, token):
    """A fresh Chromium page at the live server's /, closed before the database is flushed;
    the page's uncaught script errors are collected in page.script_errors."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: `make setup` installs it (make browser-tools)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless=new", "--no-sandbox"], timeout=STEP_MS
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(STEP_MS)
            page.script_errors = []
            page.on("pageerror", lambda error: page.script_errors.append(str(error)))
            page.goto(f"{live_server.url}/", wait_until="load")
            yield page
        finally:
            browser.close()


def sign_in(page, token):
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def alert_text(page):
    alert = page.get_by_role("alert")
    alert.wait_for(state="visible", timeout=STEP_MS)
    return alert.inner_text()


def test_a_photo_submitted_from_the_page_shows_its_overlay_and_every_file(
    worker, token, page, live_server, figure, tmp_path_factory
):
    photo = eval_photo("photos/chelsea.jpg")
    sign_in(page, token)
    page.get_by_text("Signed in as browser-user.").wait_for(timeout=STEP_MS)
    # The models come from GET /api/v1/models/: the worker's default semantic model is offered.
    page.wait_for_function(
        "() => document.querySelector('#model').options[0].text.includes('deeplabv3_mnv2_pascal')",
        timeout=STEP_MS,
    )
    page.get_by_label("Photo", exact=True).set_input_files(photo)
    page.get_by_label("Task", exact=True).select_option("semantic")
    started = time.monotonic()
    page.get_by_role("button", name="Segment").click()

    # The result has loaded (an image with pixels, not a broken icon), or the page said why not.
    page.wait_for_function(
        "() => { const img = document.querySelector('#after');"
        " return !document.querySelector('#error').hidden"
        " || (!document.querySelector('#result').hidden && img.complete && img.naturalWidth > 0); }",
        timeout=RESULT_MS,
    )
    assert page.get_by_role("alert").is_hidden(), page.get_by_role("alert").inner_text()
    elapsed = time.monotonic() - started
    after = page.locator("#after")
    assert after.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [451, 300]
    assert "overlay" in after.get_attribute("alt")
    page.wait_for_function("() => document.querySelector('#before').naturalWidth > 0", timeout=STEP_MS)
    assert "succeeded" in page.get_by_role("status").inner_text()
    assert page.locator("#history li").last.inner_text().startswith("succeeded at ")
    assert "cat:" in page.locator("#summary").inner_text()

    # A download link for every file the job has: the input and each output, as the API lists them.
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    job = api.get(f"{live_server.url}/api/v1/jobs/", timeout=30).json()["results"][0]
    links = page.locator("#downloads a")
    names = [text.split(":")[0] for text in links.all_inner_texts()]
    assert names == ["input", *job["result"]["files"]]
    for href in [links.nth(i).get_attribute("href") for i in range(links.count())]:
        assert requests.get(href, timeout=30).status_code == 200  # signed: no token needed

    # The slider moves the line between the photo and the overlay.
    page.get_by_label("Before and after (move to compare)").fill("80")
    assert page.locator(".frame").evaluate("f => f.style.getPropertyValue('--split')") == "80%"
    page.get_by_label("Before and after (move to compare)").fill("50")
    assert page.script_errors == []

    shot = tmp_path_factory.getbasetemp() / "try-page.png"
    page.screenshot(path=str(shot), full_page=True)
    figure(
        f"try page: chelsea.jpg, semantic, submitted in Chromium, overlay shown {elapsed:.1f} s after "
        f"Segment was pressed; screenshot of the finished job (photo | overlay slider, classes, "
        f"downloads) at {shot}"
    )
    if os.environ.get("SAVE_DOC_SCREENSHOTS") == "1":
        save_doc_screenshot(shot)


def save_doc_screenshot(shot):
    """The README's copy: 256 colours, small enough to keep in the repository."""
    image = Image.open(shot).convert("RGB").quantize(256)
    image.save(DOC_SCREENSHOT, optimize=True)
    assert DOC_SCREENSHOT.stat().st_size < 300_000, DOC_SCREENSHOT.stat().st_size


def test_a_bad_token_and_an_unreadable_photo_show_the_apis_errors(worker, token, page, tmp_path):
    # 401 from GET /api/v1/account/: the API's own message and code, and nothing kept.
    sign_in(page, "0" * 40)
    assert alert_text(page) == "Invalid token. (authentication_failed)"
    assert page.get_by_role("button", name="Segment").is_disabled()
    assert page.evaluate("() => sessionStorage.length + localStorage.length") == 0

    # 400 from POST /api/v1/jobs/: a file that is no image, as a phone might send one.
    sign_in(page, token)
    page.get_by_text("Signed in as browser-user.").wait_for(timeout=STEP_MS)
    assert page.get_by_role("alert").is_hidden()
    broken = tmp_path / "not-a-photo.jpg"
    broken.write_bytes(b"this is not a JPEG")
    page.get_by_label("Photo", exact=True).set_input_files(broken)
    page.get_by_role("button", name="Segment").click()
    assert alert_text(page).endswith("(invalid_image)")
    assert page.locator("#job").is_hidden()

    # The token was kept for this tab only: a reload signs in again by itself.
    assert page.evaluate("() => sessionStorage.length") == 1
    page.reload(wait_until="load")
    page.get_by_text("Signed in as browser-user.").wait_for(timeout=STEP_MS)
    assert page.script_errors == []
