"""Reading the built site: code cells that fit the column, and a stand-in banner you can read.

Run with `make test-browser`. Both checks are made at the window size of `browsing._open`
(1280 x 900), in light and dark colour schemes.
"""

from __future__ import annotations

import pytest
from browsing import NOTEBOOKS, PAGES, _open, _url_path

# Every element of a code cell's input that could scroll sideways, and the longest line of
# those that do, for the failure message.
SCROLLING_CODE = """() => Array.from(document.querySelectorAll(
        '.jp-CodeCell .jp-InputArea-editor, .jp-CodeCell .jp-InputArea-editor *'))
    .filter(el => el.scrollWidth > el.clientWidth + 1
            && getComputedStyle(el).overflowX !== 'visible')
    .map(el => el.innerText.split('\\n')
        .reduce((longest, line) => line.length > longest.length ? line : longest, ''))"""

# Text colour, effective background (every ancestor's background composited over white) and
# size of one element: enough to compute the WCAG contrast ratio.
COLOURS = """(el) => {
    const parse = (css) => {
        const [r, g, b, a] = css.match(/[\\d.]+/g).map(Number);
        return [r, g, b, a === undefined ? 1 : a];
    };
    const over = (top, bottom) => [0, 1, 2].map(
        i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
        layers.push(parse(getComputedStyle(node).backgroundColor));
    }
    let background = [255, 255, 255, 1];
    for (const layer of layers.reverse()) background = over(layer, background);
    const text = over(parse(getComputedStyle(el).color), background);
    const box = el.getBoundingClientRect();
    return {text, background, width: box.width, height: box.height};
}"""


def _luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(v) for v in rgb[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(first: list[float], second: list[float]) -> float:
    """WCAG contrast ratio of two opaque colours: 1 (identical) to 21 (black on white)."""
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_of_known_colours() -> None:
    assert contrast([0, 0, 0], [255, 255, 255]) == pytest.approx(21.0)
    assert contrast([255, 255, 255], [245, 245, 245]) < 1.1  # white on the theme's code grey


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("title", "source"), NOTEBOOKS, ids=[s for _, s in NOTEBOOKS])
def test_code_cells_do_not_scroll_sideways(
    browser: object, site_url: str, title: str, source: str, scheme: str
) -> None:
    with _open(browser, site_url + _url_path(source), scheme) as (_context, page, _):
        assert page.locator(".jp-CodeCell .jp-InputArea-editor").count() > 0
        scrolling = page.evaluate(SCROLLING_CODE)
    assert scrolling == [], f"{len(scrolling)} code cells scroll; their longest lines: {scrolling}"


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("title", "source"), PAGES[:2], ids=[s for _, s in PAGES[:2]])
def test_standin_banner_is_readable(
    browser: object, site_url: str, title: str, source: str, scheme: str
) -> None:
    with _open(browser, site_url + _url_path(source), scheme) as (_context, page, _):
        banner = page.locator(".tl-standin-notice")
        if banner.count() == 0:
            pytest.skip("the site was built with real assets: it has no stand-in banner")
        assert banner.is_visible()
        measured = {"banner": banner.evaluate(COLOURS)}
        codes = banner.locator("code")
        assert codes.count() > 0, "the banner names `assert` in inline code"
        for i in range(codes.count()):
            measured[f"code {codes.nth(i).inner_text()}"] = codes.nth(i).evaluate(COLOURS)
    for name, colours in measured.items():
        assert colours["width"] > 0 and colours["height"] > 0, name
        ratio = contrast(colours["text"], colours["background"])
        assert ratio >= 4.5, f"{name}: contrast {ratio:.2f} (text {colours})"
