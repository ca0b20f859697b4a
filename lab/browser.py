"""Drive the app in a real browser: headless Chromium (Debian's `chromium`) through Playwright.

    shot = run_in_browser("http://127.0.0.1:7860", "a photo of two circles", n=8, screenshot="app.png")

Playwright cannot download its own browsers here, so it launches the system Chromium by path.
`browser_problem()` says why a browser run is impossible on this machine (for a test's skip
message), or None.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
VIEWPORT = {"width": 1400, "height": 1100}  # CSS pixels: the whole first tab on one screenshot
PAGE_TIMEOUT_MS = 60_000  # loading the page and its scripts
WINNER_TIMEOUT_MS = 240_000  # a best-of-N on a CPU
WINNER_HEADING = "Winner"  # what lab.demo writes above the winning image
REQUIRE_ENV = "LAB_REQUIRE_BROWSER"  # set (CI): a missing browser fails the browser test instead of skipping it


def chromium_path() -> str | None:
    """The system Chromium, or None."""
    found = next((p for p in CHROMIUM_CANDIDATES if Path(p).is_file()), None)
    return found or shutil.which("chromium")


def browser_problem() -> str | None:
    """Why the browser cannot run here (what to install), or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[dev]' (or pip install playwright)"
    if chromium_path() is None:
        return "no Chromium found: apt-get install -y chromium (make setup does this where apt-get is available)"
    return None


@dataclass
class BrowserRun:
    """What the browser saw: seconds from the click to the first candidate and to the winner, and
    the winner text."""

    first_candidate_s: float
    winner_s: float
    winner_text: str
    screenshot: Path | None


def run_in_browser(url: str, prompt: str, n: int, screenshot: str | Path | None = None) -> BrowserRun:
    """Opens the app at `url`, types `prompt`, sets N, clicks generate, waits for the winner and
    (optionally) saves a full-page PNG screenshot. Raises RuntimeError when no browser can run."""
    problem = browser_problem()
    if problem:
        raise RuntimeError(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(url)
            page.locator("#prompt textarea").fill(prompt)
            count = page.locator("#n input[type=number]")
            count.fill(str(n))
            count.press("Enter")
            start = time.perf_counter()
            page.locator("#generate").click()
            page.locator("#candidates img").first.wait_for(timeout=WINNER_TIMEOUT_MS)
            first = time.perf_counter() - start
            page.locator("#winner-text").get_by_text(WINNER_HEADING).wait_for(timeout=WINNER_TIMEOUT_MS)
            done = time.perf_counter() - start
            text = page.locator("#winner-text").inner_text()
            page.wait_for_load_state("networkidle")  # the last images and plots arrive
            path = None
            if screenshot is not None:
                path = Path(screenshot)
                path.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(path), full_page=True)
        finally:
            browser.close()
    return BrowserRun(first, done, text, path)


def main(argv: list[str] | None = None) -> None:
    """`python -m lab.browser URL --prompt ... --n 8 --out reports/app/screenshot.png`"""
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m lab.browser", description="screenshot the running app after a best-of-N"
    )
    p.add_argument("url")
    p.add_argument("--prompt", default="a photo of two circles")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--out", default="reports/app/screenshot.png")
    args = p.parse_args(argv)
    run = run_in_browser(args.url, args.prompt, args.n, args.out)
    print(f"first candidates {run.first_candidate_s:.2f} s, winner {run.winner_s:.2f} s -> {run.screenshot}")


if __name__ == "__main__":
    main()
