"""Take the README's emulator screenshot from a running `bertbot serve --emulator`.

    python docs/screenshot.py [--url http://127.0.0.1:3000] [--out docs/emulator.png]

As the member, /classify a text and post a spammy message in #general (emulator.png); then,
as the moderator, open #moderators where the alert is (emulator-moderators.png).
Needs Debian's /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

MEMBER, MODERATOR = "U0EMUMEMBER", "U0EMUMODERATOR"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("emulator.png"))
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 760})
        page.goto(args.url)
        page.select_option("#user-select", MEMBER)
        page.fill("#composer-input", "/classify I love how fast support answered me!")
        page.keyboard.press("Enter")
        expect(page.locator(".message.ephemeral", has_text="model v")).to_be_visible(timeout=30_000)
        spam = "WINNER! Claim your FREE prize now: text WIN to 80086"
        page.fill("#composer-input", spam)
        page.keyboard.press("Enter")
        expect(page.locator(".message", has_text=spam)).to_be_visible(timeout=30_000)
        page.screenshot(path=str(args.out))
        page.select_option("#user-select", MODERATOR)
        page.locator("a.channel-item", has_text="# moderators").click()
        expect(page.locator(".message", has_text="Possible spam")).to_be_visible(timeout=30_000)
        moderators = args.out.with_name(args.out.stem + "-moderators.png")
        page.screenshot(path=str(moderators))
        browser.close()
    print(f"wrote {args.out} and {moderators}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
