#!/usr/bin/env python3
"""A headless Chromium for Tend's browser tests, driven by Playwright for Python.

Debian's Chromium is launched (`--chromium PATH`, never a browser Playwright would
download). The Rust test sends one JSON command per line on stdin and reads one JSON
answer per line on stdout: `{"ok": VALUE}` or `{"error": "what went wrong"}`.

Each page has a browser context of its own (its own cookies), and every request it
makes is recorded, so a test can check that nothing leaves the origin. A command that
fails saves a screenshot of its page in the artifact folder (`--artifacts DIR`).

Commands (`page` is the number `new_page` answered):
    new_page width height       goto page url -> status     url page -> url
    fill page selector value    select page selector value  press page selector key
    key page key (to the focused element)
    click page selector         submit page selector -> status of the page it loads
    text page selector -> inner text of the first match, or null
    count page selector         eval page js -> value       viewport page width height
    screenshot page path        requests page -> [url, ...] close page
"""

import argparse
import json
import os
import sys

try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sys.exit("playwright is missing: pip install playwright")

# Long enough for a loaded CI machine, short enough to fail a stuck test.
TIMEOUT_MS = 20_000


class Pages:
    def __init__(self, browser, artifacts):
        self.browser = browser
        self.artifacts = artifacts
        self.pages = {}
        self.requests = {}
        self.failures = 0

    def new_page(self, width, height):
        context = self.browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        number = len(self.pages) + 1
        self.pages[number] = page
        self.requests[number] = []
        # Context-wide: also what the page's CSS, images and scripts fetch.
        context.on("request", lambda request: self.requests[number].append(request.url))
        # A confirm() or alert() is accepted, as a person clicking OK would.
        page.on("dialog", lambda dialog: dialog.accept())
        return number

    def run(self, command):
        op = command["op"]
        if op == "new_page":
            return self.new_page(command["width"], command["height"])
        page = self.pages[command["page"]]
        try:
            return self.on_page(page, command)
        except Exception:
            self.failures += 1
            path = os.path.join(self.artifacts, f"failed-{self.failures}-{op}.png")
            try:
                page.screenshot(path=path, full_page=True)
            except Exception:
                pass
            raise

    def on_page(self, page, c):
        op = c["op"]
        if op == "goto":
            response = page.goto(c["url"], wait_until="load")
            return response.status if response else None
        if op == "url":
            return page.url
        if op == "fill":
            page.fill(c["selector"], c["value"])
            return None
        if op == "select":
            page.select_option(c["selector"], c["value"])
            return None
        if op == "press":
            page.press(c["selector"], c["key"])
            return None
        if op == "key":
            page.keyboard.press(c["key"])
            return None
        if op == "click":
            page.click(c["selector"])
            page.wait_for_load_state("load")
            return None
        if op == "submit":
            with page.expect_navigation(wait_until="load") as navigation:
                page.click(c["selector"])
            response = navigation.value
            return response.status if response else None
        if op == "set_files":
            page.set_input_files(c["selector"], c["path"])
            return None
        if op == "text":
            locator = page.locator(c["selector"])
            return locator.first.inner_text() if locator.count() else None
        if op == "wait_for":
            # Polls across navigations, so a page that reloads itself (a meta refresh)
            # is followed until the element appears in one of its loads.
            page.wait_for_selector(c["selector"], state="attached", timeout=c["timeout_ms"])
            return None
        if op == "count":
            return page.locator(c["selector"]).count()
        if op == "eval":
            return page.evaluate(c["js"])
        if op == "viewport":
            page.set_viewport_size({"width": c["width"], "height": c["height"]})
            return None
        if op == "screenshot":
            page.screenshot(path=c["path"], full_page=True)
            return None
        if op == "requests":
            return list(self.requests[c["page"]])
        if op == "close":
            page.context.close()
            return None
        raise ValueError(f"unknown command {op!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", required=True)
    parser.add_argument("--artifacts", required=True)
    args = parser.parse_args()
    os.makedirs(args.artifacts, exist_ok=True)
    with sync_playwright() as playwright:
        # No sandbox: CI runs as root, where Chromium refuses to start with one.
        browser = playwright.chromium.launch(
            executable_path=args.chromium, args=["--no-sandbox"]
        )
        pages = Pages(browser, args.artifacts)
        print(json.dumps({"ok": browser.version}), flush=True)
        for line in sys.stdin:
            try:
                answer = {"ok": pages.run(json.loads(line))}
            except Exception as error:
                answer = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(answer), flush=True)
        browser.close()


if __name__ == "__main__":
    main()
