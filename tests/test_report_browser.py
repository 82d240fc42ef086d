"""The reproduction report renders in a real browser: headless Chromium opens the page
written by ``deeplimits reproduce`` and sees the verdict table and every figure decoded."""

import shutil

import pytest

from deeplimits.experiments.reproduce import reproduce

CLAIMS = ["K2"]  # the cheapest claim: the browser, not the claim, is under test


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed and none is on PATH (chromium, chromium-browser "
                "or google-chrome). Install Debian's package with\n"
                "    $( [ \"$(id -u)\" = 0 ] || echo sudo ) sh -c 'apt-get update -qq && "
                "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'\n"
                "(the README's test command and .ci/run do this when it is missing)")


def test_report_table_and_figures_render_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    results, failures, report = reproduce(tmp_path, only=CLAIMS)
    assert not failures and len(results) == len(CLAIMS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(report.resolve().as_uri())
            rows = page.locator("table#verdicts tbody tr")
            assert rows.count() == len(CLAIMS)
            assert sorted(rows.locator("td:first-child").all_inner_texts()) == sorted(CLAIMS)
            assert rows.locator("td.pass").count() == len(CLAIMS)
            images = page.eval_on_selector_all(
                "section img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, "
                "i.getBoundingClientRect().width])")
            assert len(images) == len(CLAIMS)
            for complete, natural, shown in images:  # decoded and laid out on the page
                assert complete and natural > 100 and shown > 100
            assert len(page.screenshot(full_page=True)) > 10_000
        finally:
            browser.close()
