"""card.html as a person sees it: rendered in real headless chromium (Debian's package,
driven by Playwright), clicked and screenshotted."""

import io

import numpy as np
import pytest
from PIL import Image

from sparta.report.browser import browser_missing, chromium_page, screenshot
from sparta.report.card import write_card
from tests.report.card_fixture import make_card

pytestmark = pytest.mark.skipif(
    browser_missing() is not None, reason=f"no headless browser: {browser_missing()}"
)


@pytest.fixture(scope="module")
def card_html(tmp_path_factory):
    card = make_card()
    return card, write_card(card, tmp_path_factory.mktemp("card"))["card.html"]


def _labels(page):
    return page.eval_on_selector_all(
        "#card-table tbody tr", "rows => rows.map(r => r.dataset.label)"
    )


def test_card_page_in_headless_chromium(card_html):
    card, html = card_html
    errors = []
    with chromium_page() as page:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(html.resolve().as_uri())
        page.wait_for_load_state("load")

        # one row per (variant, sparsity), in the card's order
        assert _labels(page) == [r["label"] for r in card["rows"]]
        # every image (inline SVG plots) decoded with a size
        images = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
        )
        assert len(images) == 7
        assert all(done and w > 0 and h > 0 for done, w, h in images), images
        # nothing but the page itself and its data: URIs was requested
        assert all(u.startswith(("file:", "data:")) for u in requests), requests

        # clicking a header sorts by it, ascending then descending (best value marked)
        head = page.locator('#card-table thead th[data-key="test_acc"]')
        head.click()
        order = _labels(page)
        accs = {r["label"]: r["values"]["test_acc"] for r in card["rows"]}
        assert [accs[x] for x in order] == sorted(accs.values())
        assert order != [r["label"] for r in card["rows"]]
        assert "asc" in head.get_attribute("class")
        head.click()
        assert [accs[x] for x in _labels(page)] == sorted(accs.values(), reverse=True)
        assert _labels(page)[0] == "dense"
        assert page.locator("#card-table tbody tr").first.locator("td.best").count() >= 1

        # a column with nulls: numbers sorted, nulls last in both directions
        crown = page.locator('#card-table thead th[data-key="crown_verified_acc"]')
        values = {r["label"]: r["values"]["crown_verified_acc"] for r in card["rows"]}
        for descending in (False, True):
            crown.click()
            got = [values[x] for x in _labels(page)]
            n_null = sum(v is None for v in values.values())
            assert n_null == 3 and got[-n_null:] == [None] * n_null
            nums = got[:-n_null]
            assert nums == sorted(nums, reverse=descending)

        # the text column sorts too (variant names)
        page.locator("#card-table thead th.v").click()
        variants = [x.split(" ")[0] for x in _labels(page)]
        assert variants == sorted(variants)

        shot = page.screenshot(full_page=True)
    assert not errors, errors
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float32)
    assert pixels.shape[0] > 1500  # the whole page: table, trade-offs, six pillars
    assert pixels.std() > 20, "the screenshot is (nearly) blank"
    assert (pixels < 100).mean() > 0.005  # dark text and lines are on it


def test_screenshot_script_function(card_html, tmp_path):
    _, html = card_html
    png = screenshot(html, tmp_path / "shots" / "card.png", width=1000, full_page=False)
    image = Image.open(png)
    assert image.size[0] == 1000 and image.size[1] > 0
    assert np.asarray(image.convert("L"), dtype=np.float32).std() > 20
    with pytest.raises(FileNotFoundError, match="no page to screenshot"):
        screenshot(tmp_path / "missing.html", tmp_path / "x.png")
