"""Screenshot an HTML report in headless Chromium (the README's picture):
    .venv/bin/python scripts/screenshot.py runs/experiment-demo/report.html docs/report.png [--height 2400]
Needs scripts/install-browser.sh (system chromium + playwright)."""

import argparse
import os
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1300)
    parser.add_argument("--height", type=int, default=2400, help="clip the page to this many pixels")
    args = parser.parse_args()
    chromium = os.environ.get("SDFB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(args.html.resolve().as_uri())
        page.wait_for_timeout(1500)
        page.screenshot(path=str(args.png), clip={"x": 0, "y": 0, "width": args.width, "height": args.height})
        browser.close()
    print(f"{args.png} ({'no page errors' if not errors else 'page errors: ' + '; '.join(errors)})")


if __name__ == "__main__":
    main()
