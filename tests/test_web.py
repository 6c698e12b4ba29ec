"""The web page at `/` in headless Chromium: enter a key, make a video, watch it play."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_server import PROMPT, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                "(apt-get install -y chromium); playwright's own browsers are not downloaded")


def test_page_makes_and_plays_a_video(tmp_path):
    from playwright.sync_api import sync_playwright

    server = start_server(tmp_path, workers=1)
    _, key = server.store.add_key("browser")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{server.url}/")
            page.fill("#key", key)
            page.click("#save-key")
            assert page.evaluate("localStorage.getItem('kinema.apiKey')") == key
            page.fill("#prompt", PROMPT)
            page.fill("#seconds", "1")
            page.click("#submit")
            page.wait_for_function("document.getElementById('status').textContent === 'completed'", timeout=60_000)
            page.wait_for_function("(() => { const v = document.getElementById('player');"
                                   " return v.readyState >= 1 || v.duration > 0; })()", timeout=30_000)
            assert page.get_attribute("#player", "src").startswith("blob:")
            assert page.is_visible("#download")
            page.wait_for_selector("#videos tr")  # the key's own videos
            assert PROMPT in page.inner_text("#videos")
            page.wait_for_function("document.getElementById('verify').textContent.includes('kinema_generated')")
            assert errors == []
            browser.close()
    finally:
        server.background.stop()
