"""index.html in a real headless browser (Debian's Chromium, driven by Playwright): it loads from file:// without
an error, shows one row per line of scores.csv, sorts and filters correctly, and its figures are the CSV's."""
from __future__ import annotations

import csv
import math
import shutil

import pytest

import test_letters

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (make test installs Debian's chromium where it runs as root)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (requirements.txt)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                                                     "--disable-background-networking"])
        yield browser
        browser.close()


def open_page(browser, path):
    """The page at `path`, loaded from file://, and the errors its console and scripts reported."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_load_state("load")
    return page, errors


def rendered(page, key: str) -> list[str]:
    """The values of one column in the rows drawn, top to bottom."""
    return page.eval_on_selector_all(f"#spacer .row div[data-key='{key}']", "els => els.map(e => e.textContent)")


def count(page) -> int:
    return int(page.text_content("#count").split()[0])


def number(text: str) -> float:
    return math.inf if text == "inf" else float(text)


@pytest.fixture(scope="module")
def test_stage_page(test_stage_run):
    with open(test_stage_run / "scores.csv", newline="") as f:
        return test_stage_run, list(csv.DictReader(f))


def test_the_page_has_a_row_per_line_of_scores_csv_and_no_error(browser, test_stage_page):
    out, rows = test_stage_page
    page, errors = open_page(browser, out / "index.html")
    assert errors == []
    assert count(page) == len(rows) == 10000
    assert page.text_content("#count") == "10000 of 10000 images"
    assert page.evaluate("JSON.parse(document.getElementById('data').textContent).rows.length") == len(rows)
    # The most anomalous first: the rows drawn are the CSV's largest margins, in order.
    margins = sorted((number(r["margin"]) for r in rows), reverse=True)
    drawn = [number(v) for v in rendered(page, "margin")]
    assert len(drawn) >= 10 and drawn == pytest.approx(margins[:len(drawn)], rel=1e-3)
    page.close()


def test_sorting_by_a_column_orders_the_rows_by_it_both_ways(browser, test_stage_page):
    out, rows = test_stage_page
    page, _ = open_page(browser, out / "index.html")
    scores = sorted(float(r["score"]) for r in rows)
    page.click("#head div[data-key='score']")                                 # a new number column: highest first
    assert [float(v) for v in rendered(page, "score")] == pytest.approx(scores[::-1][:len(rendered(page, "score"))], rel=1e-3)
    page.click("#head div[data-key='score']")                                 # again: lowest first
    assert [float(v) for v in rendered(page, "score")] == pytest.approx(scores[:len(rendered(page, "score"))], rel=1e-3)
    # Scrolled to the end, the last row drawn is the highest score.
    page.eval_on_selector("#scroller", "s => { s.scrollTop = s.scrollHeight; s.dispatchEvent(new Event('scroll')); }")
    page.wait_for_timeout(200)
    assert float(rendered(page, "score")[-1]) == pytest.approx(scores[-1], rel=1e-3)
    page.close()


def test_each_filter_shows_exactly_the_rows_it_names(browser, test_stage_page):
    out, rows = test_stage_page
    page, _ = open_page(browser, out / "index.html")
    page.select_option("select[data-key='answer']", "unknown")
    unknown = [r for r in rows if r["answer"] == "unknown"]
    assert count(page) == len(unknown) > 0 and set(rendered(page, "answer")) == {"unknown"}
    page.select_option("select[data-key='pred']", unknown[0]["pred"])
    assert count(page) == sum(r["pred"] == unknown[0]["pred"] for r in unknown)
    assert set(rendered(page, "pred")) == {unknown[0]["pred"]}
    page.select_option("select[data-key='answer']", "any digit")
    assert count(page) == sum(r["answer"] != "unknown" and r["pred"] == unknown[0]["pred"] for r in rows)
    page.select_option("select[data-key='pred']", "all")
    page.select_option("select[data-key='label']", "7")
    assert count(page) == sum(r["answer"] != "unknown" and r["label"] == "7" for r in rows)
    assert set(rendered(page, "label")) == {"7"}
    page.close()


def test_every_reason_is_shown_whole(browser, test_stage_page):
    """No reason is cut short ("unlike an..."): each reason cell is as wide as its text."""
    out, rows = test_stage_page
    page, _ = open_page(browser, out / "index.html")
    page.select_option("select[data-key='answer']", "unknown")
    cells = page.eval_on_selector_all("#spacer .row div[data-key='reason']",
                                      "els => els.map(e => [e.textContent, e.scrollWidth <= e.clientWidth])")
    assert cells and {text for text, _ in cells} <= {r["reason"] for r in rows} and all(whole for _, whole in cells)
    assert any(len(text) > 10 for text, _ in cells)
    page.close()


def test_a_rows_figures_are_those_of_scores_csv(browser, test_stage_page):
    out, rows = test_stage_page
    by_index = {r["index"]: r for r in rows}
    page, _ = open_page(browser, out / "index.html")
    columns = [c for c in rows[0] if c != "is_unknown"]
    for row in page.query_selector_all("#spacer .row")[:5]:
        cells = {c: row.query_selector(f"div[data-key='{c}']").text_content() for c in columns}
        expected = by_index[cells["index"]]
        for column in columns:
            if column in ("index", "label", "answer", "pred", "reason"):
                assert cells[column] == expected[column], column
            else:
                assert number(cells[column]) == pytest.approx(number(expected[column]), rel=1e-3), column
    page.close()


def test_the_letters_and_evaluation_pages_load_and_filter_by_set(browser, trained_run, letters_dir, evaluated_run,
                                                                tmp_path):
    out = tmp_path / "letters"
    assert test_letters.main(["--checkpoint", str(trained_run["checkpoint"]), "--thresholds",
                              str(trained_run["thresholds"]), "--device", "cpu", "--quiet", "--out-dir", str(out),
                              "--max-panels", "0", "--letters-dir", str(letters_dir)]) == 0
    page, errors = open_page(browser, out / "index.html")
    assert errors == [] and count(page) == len((out / "scores.csv").read_text().splitlines()) - 1
    page.close()
    page, errors = open_page(browser, evaluated_run["out"] / "index.html")
    assert errors == []
    data = page.evaluate("JSON.parse(document.getElementById('data').textContent)")
    sets = [row[data["columns"].index(next(c for c in data["columns"] if c["key"] == "set"))] for row in data["rows"]]
    assert count(page) == len(sets) and {"known_digits", "noise", "letters"} <= set(sets)
    page.click("a[data-filter-set='noise']")                                  # the summary's link filters the rows
    assert count(page) == sets.count("noise") and set(rendered(page, "set")) == {"noise"}
    page.select_option("select[data-key='answer']", "unknown")
    assert set(rendered(page, "answer")) <= {"unknown"}
    page.close()
