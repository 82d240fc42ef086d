"""The reproduction report renders in a real browser: headless Chromium opens the page
written by ``deeplimits reproduce`` and sees the verdict table and every figure decoded."""

import dataclasses
import shutil

import pytest

from deeplimits.experiments.claims import registry
from deeplimits.experiments.report import figure_png, render_report
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


def _every_row_report(result, path):
    figure = figure_png(result.claim.plot(result.dataset))
    results = [dataclasses.replace(result, claim=claim) for claim in registry().values()]
    return render_report(results, {r.claim.id: figure for r in results}, path, scale="quick",
                         seed=0, seconds=1.0).resolve()


def test_report_table_and_figures_render_in_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    results, failures, report = reproduce(tmp_path, only=CLAIMS)
    assert not failures and len(results) == len(CLAIMS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # the full report's table fits a laptop-wide window: no column runs off to the
            # right (every registered claim's row, with the K2 row's verdict and figure)
            page.goto(_every_row_report(results[0], tmp_path / "every-row.html").as_uri())
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"the report is {overflow} px wider than a 1400 px window"
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
