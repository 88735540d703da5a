"""The API's page in a real browser (headless Chromium) against a real `bentoml serve` with API keys:
it describes this product, loads nothing from elsewhere, and its "Try it out" works with a key and says 401 without."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.browser import chromium, requested_urls
from harness.processes import ROOT, start_server

pytestmark = pytest.mark.service  # tier: real `bentoml serve` processes (pytest.ini)

KEY = "k-page-0123456789"
PREDICT = "#operations-Service_APIs-sentiment__predict"  # the Swagger UI's id: tag and operationId
SCREENSHOT = ROOT / "docs" / "swagger-ui.png"  # refreshed by this test with UPDATE_DOCS_SCREENSHOT=1


@pytest.fixture(scope="module")
def keyed_server(bentoml_home, tmp_path_factory):  # noqa: ANN001, ANN201
    folder = tmp_path_factory.mktemp("page")
    (folder / "api-keys").write_text(f"{KEY}\n")
    proc = start_server(bentoml_home, folder, env={"API_KEYS_FILE": str(folder / "api-keys")})
    yield proc
    proc.stop()


@pytest.fixture
def browser():  # noqa: ANN201
    with chromium() as driver:
        requested_urls(driver)  # the browser's own start-up: not the page's
        yield driver


def wait_for(driver, css: str, clickable: bool = False):  # noqa: ANN001, ANN201
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    condition = ec.element_to_be_clickable if clickable else ec.visibility_of_element_located
    return WebDriverWait(driver, 30).until(condition((By.CSS_SELECTOR, css)))


def try_the_example(driver, url: str, key: str | None) -> tuple[str, str]:  # noqa: ANN001
    """Open the page, authorize with `key` (unless None), run POST /predict's pre-filled example:
    (the status the page shows, the response body it shows)."""
    driver.get(f"{url}/")
    if key is not None:
        wait_for(driver, "button.authorize", clickable=True).click()
        wait_for(driver, ".modal-ux input").send_keys(key)
        wait_for(driver, ".modal-ux .auth-btn-wrapper button.authorize", clickable=True).click()
        wait_for(driver, ".modal-ux button.btn-done", clickable=True).click()
    wait_for(driver, f"{PREDICT} .opblock-summary", clickable=True).click()
    wait_for(driver, f"{PREDICT} button.try-out__btn", clickable=True).click()
    wait_for(driver, f"{PREDICT} button.execute", clickable=True).click()
    status = wait_for(driver, f"{PREDICT} .live-responses-table tbody .response-col_status").text
    body = wait_for(driver, f"{PREDICT} .live-responses-table tbody .response-col_description pre").text
    return status.split()[0], body


def test_the_page_describes_this_api_and_loads_nothing_from_elsewhere(keyed_server, browser) -> None:  # noqa: ANN001
    info = json.loads(__import__("httpx").get(f"{keyed_server.url}/info", timeout=10).text)
    browser.get(f"{keyed_server.url}/")
    title = wait_for(browser, ".info .title").text
    description = wait_for(browser, ".info .description").text
    assert title.startswith("Sentiment API") and f"{info['version']} (model {info['model']['tag']})" in title
    assert browser.title == f"Sentiment API {info['version']} · model {info['model']['tag']}"
    assert "POST /predict" in description and "Authorization: Bearer <key>" in description
    assert all(label in description for label in info["model"]["labels"])
    assert "/info" in description and "/metrics" in description
    assert "BentoML" not in title + description  # not the generic template
    urls = [u for u in requested_urls(browser) if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]
    assert f"{keyed_server.url}/docs.json" in urls  # the log saw the page's own requests
    assert all(u.startswith(f"{keyed_server.url}/") for u in urls), [u for u in urls if not u.startswith(keyed_server.url)]


def test_try_it_out_with_a_key_answers_the_pre_filled_example(keyed_server, browser, tmp_path: Path) -> None:  # noqa: ANN001
    status, body = try_the_example(browser, keyed_server.url, KEY)
    assert status == "200", body
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == 3 and all(len(row) == 2 for row in predictions)  # the example: 3 texts, top_k 2
    shot = tmp_path / "swagger-ui.png"
    assert wait_for(browser, PREDICT).screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)


def test_try_it_out_without_authorizing_shows_401(keyed_server, browser) -> None:  # noqa: ANN001
    status, body = try_the_example(browser, keyed_server.url, key=None)
    assert status == "401" and "missing API key" in json.loads(body)["error"]
