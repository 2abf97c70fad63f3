"""Numbers in a page's prose come from its run, or from a source the sentence names.

A page's Markdown may say "the largest gap is 4.7 %" only if the page printed 4.7 % (or 0.047)
somewhere, or if the sentence says where the number comes from ("fastbook chapter 5 reports
...", "fastai's source sets ..."). Otherwise the number is an unchecked claim: it went stale the
day the code changed. ``unsourced_numbers`` finds such numbers in an executed notebook; the page
run fails on them (tools/pagerun.py).

What counts, so that people can live with it:

- numbers in inline code or code blocks (`slice(1e-5, 1e-3)`, `cut=-2`) are code, not claims;
  nor are the numbers inside names (resnet18, `layer4`, fastai#4027, Python 3.11, `float32`),
  version numbers (2.8.12), link targets, or whole numbers up to 10 ("three groups", "2 epochs");
- a number is backed when the same value appears in the page's outputs or its code (rounded to
  the prose's precision, and a percentage also as a fraction: 97.6 % matches 0.976), or when its
  sentence names a source: fastbook, a chapter, the book, a paper, a URL, a forum thread or an
  issue, a ``.py`` file, "the source", "documentation".
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A number as prose writes one: 7,390  4.7  97.6 %  1e-3  2.5x (the "x" is not part of it).
_NUMBER = re.compile(
    r"(?<![\w.#/@-])"  # not inside a name (resnet18), a version, a path or an issue (#4027)
    r"(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?P<exp>[eE][-+]?\d+)?"
    r"(?P<pct>\s?%)?"
    r"(?![\w.]*\w)"  # not followed by letters or digits joined to it (18gf, 3.11.7, 2d)
)
_INLINE_CODE = re.compile(r"`[^`]*`")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_HTML_TAG = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z(*`\"'])|\n\s*\n|\n\s*[-*]\s|\n\s*\d+\.\s")
#: Words that name where a number comes from.
_SOURCES = re.compile(
    r"fastbook|\bchapter\b|\bthe book\b|\bpaper\b|https?://|forums?\.fast\.ai|\bforum|"
    r"\bthread\b|\bissue\b|#\d+|\w\.py\b|\bsource\b|\bdocumentation\b|\bdocs\b|\bREADME\b",
    re.I,
)
#: Version numbers after a package name ("torch 2.14", "Python 3.11") and model names written
#: with a space ("SqueezeNet 1.1", "ResNet 50", "VGG 16").
_VERSION_AFTER = re.compile(
    r"(?:python|torch|torchvision|fastai|fastcore|timm|mkdocs|nbmake|onnx\w*|pytorch|cuda|"
    r"squeezenet|shufflenet\w*|mobilenet\w*|mnasnet|efficientnet\w*|x?resnet|resnext|densenet|"
    r"vgg|regnet\w*|convnext|vit|swin)\s*$",
    re.I,
)
SMALL = 10


@dataclass(frozen=True)
class Unsourced:
    """A number in a Markdown cell that neither the run nor the sentence backs."""

    cell: int
    number: str
    sentence: str

    def __str__(self) -> str:
        return f"markdown cell {self.cell}: {self.number!r} in: {self.sentence.strip()}"


def _value(match: re.Match[str]) -> tuple[float, int, bool]:
    """(value, decimals, is a percentage) of a matched number."""
    text = match.group("num").replace(",", "") + (match.group("frac") or "")
    exp = match.group("exp") or ""
    decimals = len(match.group("frac") or "") - 1 if match.group("frac") else 0
    if exp:  # 2.5e-3 is written to 4 decimals
        decimals -= int(exp[1:])
    return float(text + exp), max(decimals, 0), bool(match.group("pct"))


def _numbers_in(text: str) -> list[float]:
    return [_value(m)[0] for m in _NUMBER.finditer(text)]


def _prose(markdown: str) -> str:
    """The cell's text without code, link targets, URLs and HTML tags (same length kept out)."""
    text = _FENCE.sub(" ", markdown)
    text = _INLINE_CODE.sub(" ", text)
    text = _LINK_TARGET.sub("]", text)
    text = _URL.sub(" ", text)
    return _HTML_TAG.sub(" ", text)


def _output_text(cell: dict[str, Any]) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(_join(output.get("text", "")))
        for kind, value in (output.get("data") or {}).items():
            if kind in ("text/plain", "text/markdown", "text/latex"):
                parts.append(_join(value))
            elif kind == "text/html":
                parts.append(html.unescape(_HTML_TAG.sub(" ", _join(value))))
        if output.get("output_type") == "error":
            parts.append(" ".join(output.get("traceback", [])))
    return "\n".join(parts)


def _join(value: Any) -> str:
    return value if isinstance(value, str) else "".join(value)


def _backed(value: float, decimals: int, percent: bool, known: list[float]) -> bool:
    candidates = [value] + ([value / 100] if percent else [])
    for number in known:
        for candidate in candidates:
            scale = 100 if percent and candidate != value else 1
            if round(number * scale, decimals) == round(candidate * scale, decimals):
                return True
    return False


def unsourced_numbers(notebook: dict[str, Any]) -> list[Unsourced]:
    """Every number in the notebook's Markdown that its run and its sentence leave unbacked.

    Args:
        notebook: An executed notebook, as ``json.load`` or ``nbformat.read`` gives it.

    Returns:
        One `Unsourced` per number that appears in none of the outputs or code of the page and
        whose sentence names no source; ``[]`` when every number is backed.
    """
    cells = notebook.get("cells", [])
    known: list[float] = []
    for cell in cells:
        if cell.get("cell_type") == "code":
            known += _numbers_in(_output_text(cell)) + _numbers_in(_join(cell.get("source", "")))
    found = []
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "markdown":
            continue
        prose = _prose(_join(cell.get("source", "")))
        for sentence in _SENTENCE_END.split(prose):
            if _SOURCES.search(sentence):
                continue
            for match in _NUMBER.finditer(sentence):
                value, decimals, percent = _value(match)
                small = not percent and decimals == 0 and not match.group("exp")
                if small and value <= SMALL:
                    continue
                if _VERSION_AFTER.search(sentence[: match.start()]):
                    continue
                if not _backed(value, decimals, percent, known):
                    found.append(Unsourced(index, match.group(0).strip(), sentence))
    return found


def check_page(path: Path) -> list[Unsourced]:
    """`unsourced_numbers` of the executed notebook at ``path``."""
    return unsourced_numbers(json.loads(path.read_text(encoding="utf-8")))


if __name__ == "__main__":  # report every executed page: python tools/prose_numbers.py FILES...
    import sys

    failed = 0
    for name in sys.argv[1:]:
        for problem in check_page(Path(name)):
            failed += 1
            print(f"{name}: {problem}")
    sys.exit(1 if failed else 0)
