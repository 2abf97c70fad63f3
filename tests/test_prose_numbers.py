"""tools/prose_numbers.py: numbers in a page's prose come from its run or from a named source."""

from __future__ import annotations

from typing import Any

import pytest
from prose_numbers import unsourced_numbers


def _page(markdown: str, printed: str = "", code: str = "") -> dict[str, Any]:
    return {
        "cells": [
            {"cell_type": "markdown", "source": markdown},
            {
                "cell_type": "code",
                "source": code,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": printed}],
            },
        ]
    }


def _flagged(markdown: str, printed: str = "", code: str = "") -> list[str]:
    return [problem.number for problem in unsourced_numbers(_page(markdown, printed, code))]


def test_a_number_the_run_did_not_print_is_flagged() -> None:
    # the case that motivated the rule: prose kept an old run's number
    assert _flagged("The drift is largest at 4.7 %.", "AdamW drift: largest 0.0%") == ["4.7 %"]


def test_a_number_the_run_printed_is_backed() -> None:
    assert _flagged("The drift is largest at 4.7 %.", "AdamW drift: largest 4.7%") == []


@pytest.mark.parametrize(
    ("prose", "printed"),
    [
        ("97.6 % of the model is the head.", "share: 0.9761"),  # a percentage as a fraction
        ("It keeps 1,177 tests.", "1177 passed"),  # thousands separators
        ("A loss of 0.69 at first.", "loss 0.6931"),  # rounded to the prose's precision
        ("The peak rate is 2e-3.", "lr_max 0.002"),  # scientific notation
    ],
)
def test_a_number_matches_its_printed_value_however_it_is_written(prose: str, printed: str) -> None:
    assert _flagged(prose, printed) == []


def test_a_value_matches_only_to_the_precision_the_prose_writes() -> None:
    assert _flagged("The peak rate is 2e-3.", "lr_max 0.0001") == ["2e-3"]
    assert _flagged("It moved 0.0 %.", "moved 0.049%") == []
    assert _flagged("It moved 0.0 %.", "moved 0.06%") == ["0.0 %"]


def test_a_sentence_that_names_its_source_is_backed() -> None:
    assert _flagged("fastbook chapter 5 reports an error rate of 8.3 % after two epochs.") == []
    assert _flagged("fastai's source (`fastai/callback/schedule.py`) sets 0.99 there.") == []
    assert _flagged("The thread https://forums.fast.ai/t/80150 explains the 3 groups.") == []


def test_only_the_sentence_with_the_source_is_backed() -> None:
    text = "fastbook reports 8.3 %. Our run gives 12.5 %."
    assert _flagged(text) == ["12.5 %"]


def test_code_names_versions_and_small_counts_are_not_claims() -> None:
    text = (
        "Use `slice(1e-5, 1e-3)` with resnet18 and `layer4`; fastai#4027 is open; "
        "torch 2.14 and fastai 2.8.12 run it, SqueezeNet 1.1 too. It has three groups and 2 "
        "epochs, "
        "see [the head](head.ipynb#part-42)."
    )
    assert _flagged(text) == []


def test_numbers_in_the_code_count_as_backed() -> None:
    assert _flagged("A batch of 64 images.", code="dls = loaders(bs=64)") == []


def test_a_larger_count_needs_a_source_or_an_output() -> None:
    assert _flagged("The data set has 37 breeds.") == ["37"]
    assert _flagged("The data set has 37 breeds.", printed="breeds: 37") == []


def test_the_page_run_fails_a_page_with_an_unsourced_number() -> None:
    import pagerun

    error = pagerun._unsourced_error(_page("The drift is largest at 4.7 %.", "largest 0.0%"))
    assert error is not None and "4.7 %" in error.summary and "4.7 %" in error.trace
    assert pagerun._unsourced_error(_page("Largest at 4.7 %.", "largest 4.7%")) is None
