"""Render a report's figure HTML (plotly, self-contained) to a PNG with headless Chromium.

    python scripts/figure_png.py results/digits-table1/report/figure2.html docs/img/figure2-digits-random-dense.png

Uses Playwright's Python package with the system Chromium (``/usr/bin/chromium``, Debian's
``chromium``; no browser download), as the browser test does.  The page is shown at ``--width`` ×
``--height`` CSS pixels and the first plotly figure is captured once plotly has drawn it.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def render(html: Path, png: Path, width: int = 900, height: int = 470, chromium: str = "/usr/bin/chromium") -> Path:
    from playwright.sync_api import sync_playwright

    if not html.is_file():
        raise SystemExit(f"{html} does not exist; build the report first (advunlearn report DIR)")
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(html.resolve().as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
            page.locator(".js-plotly-plot").first.screenshot(path=str(png))
        finally:
            browser.close()
    return png


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("html", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--width", type=int, default=900)
    ap.add_argument("--height", type=int, default=470)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args(argv)
    print(render(a.html, a.png, a.width, a.height, a.chromium))


if __name__ == "__main__":
    main()
