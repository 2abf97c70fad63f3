"""``transferlens._head`` against fastai: the head is fastai's, layer for layer.

For every argument combination (a table of hand-picked cases plus a hypothesis search) both heads
have the same layer types, the same ``state_dict`` keys and shapes, the same weights when built from
the same seed, and, after loading fastai's weights into ours, bit-identical outputs in eval mode.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from fastai.layers import AdaptiveConcatPool2d as FastaiConcatPool
from fastai.layers import Flatten as FastaiFlatten
from fastai.layers import SigmoidRange as FastaiSigmoidRange
from fastai.vision.learner import create_head as fastai_create_head
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from transferlens import AdaptiveConcatPool2d, Flatten, LensError, SigmoidRange, create_head

#: Hand-picked argument sets covering every switch of create_head (nf and n_out are added).
HEAD_CASES: list[dict[str, Any]] = [
    {},
    {"lin_ftrs": []},
    {"lin_ftrs": [16]},
    {"lin_ftrs": [16, 8], "ps": 0.3},
    {"lin_ftrs": [16, 8], "ps": [0.1, 0.2, 0.3]},
    {"lin_ftrs": [16], "ps": 0.0},
    {"lin_ftrs": [16], "ps": [0.0, 0.5]},
    {"pool": False},
    {"concat_pool": False},
    {"pool": False, "concat_pool": False, "lin_ftrs": [8]},
    {"first_bn": False},
    {"first_bn": False, "lin_ftrs": []},
    {"bn_final": True},
    {"lin_first": True},
    {"lin_first": True, "lin_ftrs": [16, 8], "ps": [0.1, 0.2, 0.3]},
    {"lin_first": True, "lin_ftrs": [], "first_bn": False},
    {"lin_first": True, "bn_final": True, "y_range": (-1.0, 4.0)},
    {"y_range": (0.0, 5.5)},
    {"lin_ftrs": [12], "ps": [0.25], "bn_final": True, "y_range": (-3.0, 3.0)},
    {"pool": False, "lin_first": True, "first_bn": False, "bn_final": True, "lin_ftrs": [4, 4]},
]


def _randomize(module: nn.Module, seed: int) -> None:
    """Give every parameter and buffer of ``module`` distinct values (running_var stays > 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.copy_(noise.abs() + 0.5)
            else:
                tensor.copy_(noise)


def _input_for(nf: int, pool: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    shape = (3, nf, 3, 3) if pool else (3, nf)
    return torch.randn(shape, generator=generator)


def assert_same_head(kwargs: dict[str, Any]) -> None:
    """Build both heads from one seed and check structure, initial weights and outputs."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        # A copy: with lin_first, fastai pops the first probability out of the caller's `ps` list.
        theirs = fastai_create_head(**copy.deepcopy(kwargs))
        torch.manual_seed(0)
        ours = create_head(**kwargs)

    assert [type(layer).__name__ for layer in ours] == [type(layer).__name__ for layer in theirs]
    assert repr(ours) == repr(theirs)
    their_state, our_state = theirs.state_dict(), ours.state_dict()
    assert list(our_state) == list(their_state)
    for key, value in their_state.items():
        assert our_state[key].shape == value.shape, key
        # Same seed, same construction order: the initial weights are fastai's, bit for bit.
        assert torch.equal(our_state[key], value), key

    _randomize(theirs, seed=2)
    ours.load_state_dict(theirs.state_dict())
    x = _input_for(kwargs["nf"], kwargs.get("pool", True))
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), theirs.eval()(x))


@pytest.mark.oracle
@pytest.mark.parametrize("case", HEAD_CASES, ids=[str(i) for i in range(len(HEAD_CASES))])
def test_create_head_matches_fastai_on_table(case: dict[str, Any]) -> None:
    assert_same_head({"nf": 6, "n_out": 3, **case})


@st.composite
def head_arguments(draw: st.DrawFn) -> dict[str, Any]:
    """Any valid create_head call with small sizes."""
    lin_ftrs = draw(st.none() | st.lists(st.integers(1, 8), max_size=3))
    n_linear = (1 if lin_ftrs is None else len(lin_ftrs)) + 1
    probability = st.floats(0.0, 0.9)
    ps = draw(probability | st.lists(probability, min_size=n_linear, max_size=n_linear))
    y_range = draw(st.none() | st.tuples(st.floats(-5.0, 0.0), st.floats(0.5, 5.0)))
    return {
        "nf": draw(st.integers(1, 16)),
        "n_out": draw(st.integers(1, 5)),
        "lin_ftrs": lin_ftrs,
        "ps": ps,
        "pool": draw(st.booleans()),
        "concat_pool": draw(st.booleans()),
        "first_bn": draw(st.booleans()),
        "bn_final": draw(st.booleans()),
        "lin_first": draw(st.booleans()),
        "y_range": y_range,
    }


@pytest.mark.oracle
@settings(max_examples=150, deadline=None)
@given(kwargs=head_arguments())
def test_create_head_matches_fastai_everywhere(kwargs: dict[str, Any]) -> None:
    assert_same_head(kwargs)


@pytest.mark.oracle
@pytest.mark.parametrize("size", [None, 1, 2, (2, 3)])
def test_adaptive_concat_pool_matches_fastai(size: int | tuple[int, int] | None) -> None:
    ours, theirs = AdaptiveConcatPool2d(size), FastaiConcatPool(size)
    assert dict(ours.named_children()).keys() == dict(theirs.named_children()).keys()
    assert [repr(m) for m in ours.children()] == [repr(m) for m in theirs.children()]
    x = torch.randn(2, 5, 7, 6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ours(x), theirs(x))


@pytest.mark.oracle
@pytest.mark.parametrize("full", [False, True])
def test_flatten_matches_fastai(full: bool) -> None:
    x = torch.randn(2, 5, 3, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(Flatten(full)(x), FastaiFlatten(full)(x))


@pytest.mark.oracle
@pytest.mark.parametrize(("low", "high"), [(0.0, 1.0), (-1.0, 3.0), (0.5, 5.5)])
def test_sigmoid_range_matches_fastai(low: float, high: float) -> None:
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)) * 4
    assert torch.equal(SigmoidRange(low, high)(x), FastaiSigmoidRange(low, high)(x))


def test_concat_pool_doubles_the_features_of_the_first_linear() -> None:
    head = create_head(512, 10)
    assert head[4].in_features == 1024
    assert create_head(512, 10, concat_pool=False)[4].in_features == 512
    assert create_head(512, 10, pool=False)[2].in_features == 512


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"nf": 0, "n_out": 3}, "`nf`"),
        ({"nf": 2.5, "n_out": 3}, "`nf`"),
        ({"nf": 8, "n_out": 0}, "`n_out`"),
        ({"nf": 8, "n_out": 3, "lin_ftrs": [16, 0]}, "`lin_ftrs`"),
        ({"nf": 8, "n_out": 3, "lin_ftrs": "16"}, "`lin_ftrs`"),
        ({"nf": 8, "n_out": 3, "ps": [0.1, 0.2, 0.3]}, "`ps`"),
        ({"nf": 8, "n_out": 3, "ps": []}, "`ps`"),
        ({"nf": 8, "n_out": 3, "ps": 1.5}, "`ps`"),
        ({"nf": 8, "n_out": 3, "y_range": (0.0, 1.0, 2.0)}, "`y_range`"),
        ({"nf": 8, "n_out": 3, "ps": slice(0.1, 0.5)}, r"`ps`.*Pass e\.g\. ps=0\.5"),
        ({"nf": 8, "n_out": 3, "ps": None}, "`ps`"),
        ({"nf": 8, "n_out": 3, "ps": "0.5"}, "`ps`"),
        ({"nf": 8, "n_out": 3, "y_range": 4.0}, "`y_range`"),
    ],
    ids=[
        "nf-zero",
        "nf-float",
        "n_out",
        "lin_ftrs",
        "lin_ftrs-str",
        "ps-length",
        "ps-empty",
        "ps-range",
        "y_range",
        "ps-slice",
        "ps-none",
        "ps-str",
        "y_range-number",
    ],
)
def test_create_head_rejects_bad_arguments(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(LensError, match=argument) as caught:
        create_head(**kwargs)
    assert isinstance(caught.value, ValueError)
