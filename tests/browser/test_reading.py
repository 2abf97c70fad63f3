"""Reading the built site: code cells that fit the column, printed output that wraps at spaces,
and a stand-in banner you can read.

Run with `make test-browser`. The checks are made at the window size of `browsing._open`
(1280 x 900); code cells and the banner in light and dark colour schemes.
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


# Where printed output wraps: every soft line break (one the browser chose, not a "\n" of the
# output) inside an output's <pre>, as the characters on either side of it, whether both are word
# characters, and whether the piece of the token the break falls in (since the last space or
# hyphen) starts its line, i.e. is longer than a line and had to break somewhere.
SOFT_BREAKS = """(root) => {
    const breaks = [];
    for (const pre of root.querySelectorAll('.jp-OutputArea-output pre')) {
        const chars = [];
        const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
        const range = document.createRange();
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (let i = 0; i < node.data.length; i++) {
                range.setStart(node, i);
                range.setEnd(node, i + 1);
                const rects = Array.from(range.getClientRects()).filter(r => r.width > 0);
                chars.push({c: node.data[i], top: rects.length ? rects[0].top : null});
            }
        }
        let previous = -1, lineStart = 0;
        chars.forEach((ch, k) => {
            if (ch.top === null) return;
            if (previous >= 0 && ch.top > chars[previous].top + 2) {
                const gap = chars.slice(previous, k).map(x => x.c).join('');
                if (!gap.includes('\\n')) {
                    let start = previous;
                    while (start > 0 && !/[\\s-]/.test(chars[start - 1].c)) start--;
                    const text = (from, to) => chars.slice(Math.max(from, 0), to)
                        .map(x => x.c).join('');
                    breaks.push({
                        line: text(lineStart, previous + 1).slice(-40),
                        next: text(k, k + 20),
                        insideWord: /\\w/.test(chars[previous].c) && /\\w/.test(ch.c),
                        tokenLongerThanLine: start <= lineStart,
                    });
                }
                lineStart = k;
            }
            previous = k;
        });
    }
    return breaks;
}"""


def _words_broken(breaks: list[dict]) -> list[str]:
    return [
        f"{b['line']!r} | {b['next']!r}"
        for b in breaks
        if b["insideWord"] and not b["tokenLongerThanLine"]
    ]


@pytest.mark.parametrize(("title", "source"), NOTEBOOKS, ids=[s for _, s in NOTEBOOKS])
def test_printed_output_wraps_at_spaces(
    browser: object, site_url: str, title: str, source: str
) -> None:
    """At 1280 px, no line of printed output breaks inside a word ("rando | m")."""
    with _open(browser, site_url + _url_path(source)) as (_context, page, _):
        breaks = page.locator("article").evaluate(SOFT_BREAKS)
    assert _words_broken(breaks) == [], "lines broken inside a word (line end | next line)"


def test_printed_output_wrap_check_sees_broken_words(browser: object, site_url: str) -> None:
    """The check above can fail: a known sentence in a page's output area, then broken anywhere."""
    sentence = " ".join(["The weights are random, not ImageNet-trained, and depend on it."] * 4)
    with _open(browser, site_url + _url_path(NOTEBOOKS[0][1])) as (_context, page, _):
        output = page.locator(".jp-OutputArea-output:has(> pre)").first
        output.evaluate("(out, text) => { out.querySelector('pre').textContent = text; }", sentence)
        wrapped = output.evaluate(SOFT_BREAKS)
        output.evaluate("(out) => { out.querySelector('pre').style.wordBreak = 'break-all'; }")
        forced = output.evaluate(SOFT_BREAKS)
    assert len(wrapped) >= 2, "the sentence is longer than two lines: it wraps"
    assert _words_broken(wrapped) == []
    assert len(_words_broken(forced)) >= 1, "with word-break: break-all, the check reports it"
