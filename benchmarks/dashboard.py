"""Open a dashboard in headless Chromium and time what a reader waits for.

    python benchmarks/dashboard.py REPORT_DIR/dashboard.html

Debian's ``chromium`` (``apt-get install chromium``) driven by Playwright,
network off. Times, from the browser's own clock: opening the file until the
page is drawn (``body[data-ready=true]``: unpacked, charts and case list
drawn), re-listing the cases for a rule filter (each rule in turn; the
slowest and the fastest), and opening a case panel with its timeline. The
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

FILTER_JS = """(rule) => {
  const s = document.getElementById('f-rule');
  s.value = rule;
  const t0 = performance.now();
  s.dispatchEvent(new Event('change'));
  return [performance.now() - t0, document.getElementById('case-count').textContent];
}"""

PANEL_JS = """() => new Promise((done) => {
  const row = document.querySelector('#case-table tbody tr');
  const t0 = performance.now();
  row.click();
  requestAnimationFrame(() => done(performance.now() - t0));
})"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dashboard", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_context(
            offline=True, viewport={"width": 1300, "height": 1000}
        ).new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        t0 = time.perf_counter()
        page.goto(args.dashboard.resolve().as_uri())
        page.wait_for_selector("body[data-ready=true]", timeout=120_000)
        ready_s = time.perf_counter() - t0
        rules = page.eval_on_selector_all("#f-rule option", "os => os.map(o => o.value)")
        filters = {rule: page.evaluate(FILTER_JS, rule) for rule in rules if rule}
        panel_ms = page.evaluate(PANEL_JS)
        page.wait_for_selector("#timeline .main-svg", timeout=30_000)
        browser.close()
    times = [ms for ms, _ in filters.values()]
    print(
        json.dumps(
            {
                "dashboard_mb": round(args.dashboard.stat().st_size / 1e6, 2),
                "ready_s": round(ready_s, 2),
                "filter_ms_min": round(min(times), 1) if times else None,
                "filter_ms_max": round(max(times), 1) if times else None,
                "filters": {rule: count for rule, (_, count) in filters.items()},
                "panel_ms": round(panel_ms, 1),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
