"""Browser tests: Playwright's Python package driving Debian's Chromium (/usr/bin/chromium,
installed by .ci/run; no browser download) against pytest-django's live server.

Screenshots go to test-artifacts/browser/ at the repository root. Without Chromium these tests
are skipped with a note, unless REQUIRE_BROWSER is set (as .ci/run does): then they fail.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WIDTH = 1280  # the narrowest admin screen the pages are made for (issue 12)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"No Chromium at {CHROMIUM}: install it with `apt-get install -y chromium`."
        if os.environ.get("REQUIRE_BROWSER"):  # .ci/run: the browser tests must run there
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread, and Django refuses ORM calls
    # from a thread with a running loop; the test's ORM calls are plain synchronous ones.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": WIDTH, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def assert_fits(page) -> None:
    """The page needs no horizontal scrolling at the viewport's width."""
    widths = page.evaluate(
        "() => ({doc: document.documentElement.scrollWidth, view: window.innerWidth})"
    )
    assert widths["doc"] <= widths["view"], f"{page.url} scrolls sideways: {widths}"


@pytest.fixture
def shot(page):
    """shot("01-index") saves a full-page screenshot under test-artifacts/browser/ and asserts
    the page fits the viewport's width (no horizontal scroll)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def save(name: str, fits: bool = True) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if fits:
            assert_fits(page)
        return path

    return save
