"""``transferlens._body`` against fastai: same bodies, same feature counts, same whole models.

Models are built on the ``meta`` device where only structure matters (no memory, no time) and are
materialized with seeded random weights where outputs are compared. A seeded ``create_vision_model``
is also checked to give fastai's exact weights.
"""

from __future__ import annotations

import ast
import copy
import functools
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torchvision
from fastai.callback.hook import num_features_model
from fastai.vision import learner as fastai_learner
from torch import nn

from transferlens import (
    LensError,
    as_sequential,
    create_body,
    create_head,
    create_vision_model,
    default_cut,
    has_pool_type,
    num_features,
    probe_features,
)

SOURCE_DIR = pathlib.Path(__file__).parents[1] / "src" / "transferlens"

#: One architecture per family of fastai's model_meta, plus one fastai has no meta for: bodies
#: compared structurally and by their outputs.
BODY_ARCHS = [
    "resnet18",
    "squeezenet1_0",
    "densenet121",
    "vgg11_bn",
    "vgg11",
    "alexnet",
    "mobilenet_v3_small",
]
#: Input sizes where 32x32 is too small for the body (AlexNet's pools need 64x64).
IMAGE_SIZE = {"alexnet": (64, 64)}
#: Compared structurally only: same classes as above, or too big to run here.
STRUCTURE_ONLY_ARCHS = [
    "resnext50_32x4d",
    "wide_resnet50_2",
    "densenet161",
    "resnet152",
    "vgg19_bn",
    "efficientnet_b0",
]


def builder(name: str) -> Callable[..., nn.Module]:
    return torchvision.models.get_model_builder(name)


def fastai_cut(name: str) -> int | None:
    return fastai_learner.model_meta.get(builder(name), fastai_learner._default_meta)["cut"]


@functools.cache
def meta_model(name: str) -> nn.Module:
    """The torchvision model on the meta device: the structure, without weights.

    Cached and shared between tests: a test that changes the model must work on a deepcopy.
    """
    with torch.device("meta"):
        return builder(name)(weights=None)


def materialize(module: nn.Module, seed: int) -> nn.Module:
    """Give a meta module real, seeded weights (default init plus noise; running_var > 0)."""
    module.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                tensor.zero_()
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean") or tensor.ndim == 1:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            else:
                fan_in = tensor[0].numel()
                std = (2.0 / fan_in) ** 0.5
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)
    return module


def assert_same_structure(ours: nn.Module, theirs: nn.Module) -> None:
    assert repr(ours) == repr(theirs)
    our_state, their_state = ours.state_dict(), theirs.state_dict()
    assert list(our_state) == list(their_state)
    assert [t.shape for t in our_state.values()] == [t.shape for t in their_state.values()]


@pytest.mark.oracle
@pytest.mark.parametrize("name", BODY_ARCHS + STRUCTURE_ONLY_ARCHS + ["mobilenet_v2"])
def test_default_cut_is_fastais(name: str) -> None:
    assert default_cut(name) == fastai_cut(name)
    assert default_cut(builder(name)) == fastai_cut(name)


@pytest.mark.oracle
@pytest.mark.parametrize("name", BODY_ARCHS)
def test_create_body_matches_fastai_and_computes_the_same(name: str) -> None:
    model = meta_model(name)
    theirs = fastai_learner.create_body(
        copy.deepcopy(model), pretrained=False, cut=fastai_cut(name)
    )
    ours = create_body(copy.deepcopy(model), cut=default_cut(name))
    assert_same_structure(ours, theirs)

    materialize(theirs, seed=0)
    materialize(ours, seed=1).load_state_dict(theirs.state_dict())
    x = torch.randn(
        1, 3, *IMAGE_SIZE.get(name, (32, 32)), generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), theirs.eval()(x))


@pytest.mark.oracle
@pytest.mark.parametrize("name", STRUCTURE_ONLY_ARCHS)
def test_create_body_matches_fastai_structure_for_big_models(name: str) -> None:
    model = meta_model(name)
    theirs = fastai_learner.create_body(model, pretrained=False, cut=fastai_cut(name))
    assert_same_structure(create_body(model, cut=default_cut(name)), theirs)


@pytest.mark.oracle
@pytest.mark.parametrize("name", [*BODY_ARCHS, "wide_resnet50_2", "densenet161"])
def test_create_body_pooling_rule_matches_fastai(name: str) -> None:
    # cut=None everywhere, even where fastai's meta has a cut; for DenseNet the rule keeps nothing.
    model = meta_model(name)
    theirs = fastai_learner.create_body(model, pretrained=False, cut=None)
    assert_same_structure(create_body(model, cut=None), theirs)


@pytest.mark.oracle
@pytest.mark.parametrize("cut", [-3, -2, -1, 0, 1, 4, 6, 20])
def test_create_body_int_cut_matches_fastai(cut: int) -> None:
    model = meta_model("resnet18")
    theirs = fastai_learner.create_body(model, pretrained=False, cut=cut)
    assert_same_structure(create_body(model, cut=cut), theirs)


@pytest.mark.oracle
def test_create_body_callable_cut_matches_fastai() -> None:
    model = meta_model("resnet18")

    def stem(m: nn.Module) -> nn.Module:
        return nn.Sequential(m.conv1, m.bn1, m.relu)

    theirs = fastai_learner.create_body(model, pretrained=False, cut=stem)
    assert_same_structure(create_body(model, cut=stem), theirs)


@pytest.mark.oracle
def test_mobilenet_v2_has_no_pooling_child_in_fastai_either() -> None:
    model = meta_model("mobilenet_v2")
    with pytest.raises(StopIteration):
        fastai_learner.create_body(model, pretrained=False, cut=None)
    with pytest.raises(LensError, match="`cut`"):
        create_body(model, cut=None)
    assert len(create_body(model, cut=-1)) == 1


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_0", "densenet121", "vgg11_bn"])
def test_has_pool_type_matches_fastai_on_every_module(name: str) -> None:
    modules = list(meta_model(name).modules())
    assert [has_pool_type(m) for m in modules] == [fastai_learner.has_pool_type(m) for m in modules]


@pytest.mark.oracle
@pytest.mark.parametrize("name", BODY_ARCHS)
def test_num_features_matches_fastai(name: str) -> None:
    body = create_body(copy.deepcopy(meta_model(name)), cut=default_cut(name))
    expected = num_features_model(nn.Sequential(*body.children()))
    body.train()
    assert num_features(body) == expected
    assert all(module.training for module in body.modules()), "training flags not restored"


#: Cheap architectures built for real: a seeded build must give fastai's model, weight for weight.
SEEDED_CASES: list[tuple[str, dict[str, Any]]] = [
    ("resnet18", {}),
    ("squeezenet1_1", {"concat_pool": False, "lin_first": True, "first_bn": False}),
    ("mobilenet_v3_small", {"init": None}),
    (
        "resnet18",
        {"cut": -3, "lin_ftrs": [32], "ps": 0.2, "bn_final": True, "y_range": (0.0, 4.0)},
    ),
]


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("name", "kwargs"), SEEDED_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SEEDED_CASES)]
)
def test_seeded_create_vision_model_is_fastais(name: str, kwargs: dict[str, Any]) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = fastai_learner.create_vision_model(builder(name), 3, pretrained=False, **kwargs)
        torch.manual_seed(0)
        ours = create_vision_model(builder(name)(weights=None), 3, **kwargs)
    assert_same_structure(ours, theirs)
    their_state, our_state = theirs.state_dict(), ours.state_dict()
    assert all(torch.equal(our_state[key], value) for key, value in their_state.items())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), theirs.eval()(x))


@pytest.mark.oracle
@pytest.mark.parametrize(
    "name",
    [
        "resnext50_32x4d",
        "wide_resnet50_2",
        "densenet121",
        "vgg16_bn",
        "vgg16",
        "alexnet",
        "squeezenet1_0",
        "efficientnet_b0",
        "convnext_tiny",
    ],
)
def test_create_vision_model_matches_fastai_structure(name: str) -> None:
    # A built model carries no architecture name: the default cut comes from its class.
    with torch.device("meta"):
        theirs = fastai_learner.create_vision_model(builder(name), 3, pretrained=False)
        ours = create_vision_model(builder(name)(weights=None), 3)
    assert_same_structure(ours, theirs)


def test_as_sequential_computes_what_the_model_computes() -> None:
    model = builder("resnet18")(weights=None).train()
    rng_state = torch.get_rng_state()
    sequential = as_sequential(model)
    assert torch.equal(torch.get_rng_state(), rng_state), "as_sequential used the global RNG"
    assert all(module.training for module in model.modules()), "training flags not restored"
    assert list(sequential.state_dict()) == list(model.state_dict())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(sequential.eval()(x), model.eval()(x))


@pytest.mark.parametrize("name", ["resnext50_32x4d", "vgg11", "alexnet", "efficientnet_b0"])
def test_as_sequential_fits_resnet_like_models(name: str) -> None:
    # On the meta device the probe checks shapes only: enough to see the sequence runs through.
    assert isinstance(as_sequential(meta_model(name))[-2], nn.Flatten)


@pytest.mark.parametrize("name", ["densenet121", "mobilenet_v2", "squeezenet1_0"])
def test_as_sequential_refuses_models_that_do_more(name: str) -> None:
    with pytest.raises(LensError, match="`model`") as caught:
        as_sequential(meta_model(name))
    assert isinstance(caught.value, ValueError)


class _FlattenlessForward(nn.Module):
    """Children in order but a ReLU in between: the shape fits, the numbers do not."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


def test_as_sequential_refuses_a_model_that_computes_something_else() -> None:
    with pytest.raises(LensError, match="computes something else"):
        as_sequential(_FlattenlessForward())


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: create_body(nn.Sequential(nn.Linear(2, 2)), cut="-2"), "`cut`"),
        (lambda: create_body(nn.Sequential(nn.Linear(2, 2)), cut=None), "`cut`"),
        (lambda: create_body(nn.Sequential(nn.Linear(2, 2)), cut=lambda m: [m]), "`cut`"),
        (lambda: create_vision_model(meta_model("resnet18"), 3, n_in=1), "`n_in`"),
        (lambda: create_vision_model(meta_model("resnet18"), 0), "`n_out`"),
        (lambda: create_vision_model(meta_model("resnet18"), 3, custom_head=3), "`custom_head`"),
        (lambda: num_features(nn.Sequential(nn.Conv2d(5, 4, 3))), "`body`"),
        (lambda: as_sequential(nn.Linear(3, 2)), "`model`"),
        (lambda: default_cut("resnet1800"), "`arch`"),
    ],
    ids=[
        "cut-type",
        "cut-no-pool",
        "cut-returns-list",
        "n_in",
        "n_out",
        "custom_head",
        "body",
        "model",
        "arch",
    ],
)
def test_bad_inputs_raise_lens_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(LensError, match=argument) as caught:
        call()
    assert isinstance(caught.value, ValueError)


@pytest.mark.oracle
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("resnet18", {}), ("efficientnet_b0", {}), ("squeezenet1_1", {"concat_pool": False})],
)
def test_create_vision_model_takes_a_builder_as_fastai_does(
    name: str, kwargs: dict[str, Any]
) -> None:
    # fastai's calling style: the builder, not a built model (no download: pretrained=False).
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = fastai_learner.create_vision_model(builder(name), 5, pretrained=False, **kwargs)
        torch.manual_seed(0)
        ours = create_vision_model(builder(name), 5, pretrained=False, **kwargs)
        torch.manual_seed(0)
        by_name = create_vision_model(name, 5, pretrained=False, **kwargs)
    assert_same_structure(ours, theirs)
    their_state = theirs.state_dict()
    for model in (ours, by_name):
        state = model.state_dict()
        assert list(state) == list(their_state)
        assert all(torch.equal(state[key], value) for key, value in their_state.items())


def test_create_vision_model_calls_a_builder_with_fastais_arguments() -> None:
    calls: list[dict[str, Any]] = []

    def resnet18(**kwargs: Any) -> nn.Module:  # not torchvision's: fastai has no meta for it
        calls.append(kwargs)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Linear(4, 2))

    create_vision_model(resnet18, 2)
    create_vision_model(resnet18, 2, pretrained=False)
    create_vision_model(resnet18, 2, weights="IMAGENET1K_V1")
    assert calls == [{"pretrained": True}, {"pretrained": False}, {"weights": "IMAGENET1K_V1"}]


@pytest.mark.oracle
def test_quantizable_resnet_is_fastais_default_not_a_resnet() -> None:
    """fastai's model_meta is keyed by the builder itself: the quantization namespace's
    resnet18 is another function, so it gets the default meta (pooling-layer rule), and every
    transferlens function agrees with that."""
    quantized = torchvision.models.quantization.resnet18
    assert quantized not in fastai_learner.model_meta
    assert default_cut(quantized) is None
    with torch.device("meta"):
        theirs = fastai_learner.create_vision_model(quantized, 3, pretrained=False)
        ours = create_vision_model(quantized, 3, pretrained=False)
        from_built = create_vision_model(quantized(weights=None), 3)
    assert_same_structure(ours, theirs)
    assert_same_structure(from_built, theirs)
    # The resnet cut (-2) would have kept avgpool and fc (the model ends with quant, dequant).
    assert type(ours[0][-1]).__name__ == "Sequential"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: create_vision_model(torchvision.models.ResNet, 3), "`model` must be a built"),
        (lambda: create_vision_model(42, 3), "`model` must be a built"),
        (lambda: create_vision_model("resnt18", 3), "`model` 'resnt18'.*Did you mean 'resnet18'"),
        (
            lambda: create_vision_model(meta_model("resnet18"), 3, weights="DEFAULT"),
            "`weights` goes with a builder",
        ),
        (lambda: create_vision_model(lambda: None, 3), "cannot be called as fastai calls"),
        (lambda: create_vision_model(lambda **_: None, 3), "returned a NoneType"),
    ],
    ids=["class", "number", "typo", "weights-with-model", "no-kwargs", "returns-none"],
)
def test_create_vision_model_says_what_to_pass(call: Callable[[], object], message: str) -> None:
    with pytest.raises(LensError, match=message):
        call()


class _RecordsInputDevice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)
        self.seen: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.device.type)
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


def test_as_sequential_probes_a_cpu_model_in_place() -> None:
    model = _RecordsInputDevice()
    sequential = as_sequential(model)
    assert model.seen == ["cpu"]
    assert sequential.conv is model.conv and sequential.fc is model.fc


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_as_sequential_probes_a_gpu_model_on_a_cpu_copy() -> None:
    model = _RecordsInputDevice().cuda()
    sequential = as_sequential(model)
    assert model.seen == [], "the GPU model itself ran the probe"
    assert all(p.device.type == "cuda" for p in model.parameters()), "the model moved"
    assert sequential.conv is model.conv and sequential.fc is model.fc
    x = torch.randn(2, 3, 16, 16, device="cuda")
    with torch.no_grad():
        assert sequential.eval()(x).device.type == "cuda"


def _imported_packages(nodes: list[ast.stmt] | list[ast.AST]) -> set[str]:
    packages = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            packages |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            packages.add(node.module.split(".")[0])
    return packages


LIBRARY_MODULES = sorted(
    path.relative_to(SOURCE_DIR).with_suffix("").as_posix()
    for folder in ("_recipe", "_reports")
    for path in (SOURCE_DIR / folder).glob("*.py")
)


@pytest.mark.parametrize("module", LIBRARY_MODULES)
def test_module_imports_neither_fastai_nor_torchvision_at_import_time(module: str) -> None:
    # These modules import only torch, the standard library and each other at module level, so
    # checking their own source is enough; torchvision may only be imported inside functions.
    assert len(LIBRARY_MODULES) >= 20
    tree = ast.parse((SOURCE_DIR / f"{module}.py").read_text())
    absolute = [n for n in tree.body if not (isinstance(n, ast.ImportFrom) and n.level)]
    assert _imported_packages(absolute) <= {
        "__future__",
        "collections",
        "contextlib",
        "copy",
        "dataclasses",
        "difflib",
        "html",
        "itertools",
        "math",
        "numbers",
        "re",
        "sys",
        "time",
        "typing",
        "torch",
        "transferlens",
    }
    assert "fastai" not in _imported_packages(list(ast.walk(tree)))


# ---------------------------------------------------------------------------------------------
# Pretrained weights that cannot be had: a LensError that says what to pass, never a URLError.
# The download is made to fail here, into an empty TORCH_HOME: the real caches are not touched.


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> list[str]:
    """An empty hub folder, and a download that fails as it does without a network."""
    import urllib.error

    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # a set_dir() elsewhere must not count
    urls: list[str] = []

    def no_network(url: str, destination: str, *args: object, **kwargs: object) -> None:
        urls.append(url)
        assert destination.startswith(str(tmp_path)), destination
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return urls


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("efficientnet_b0", "efficientnet_b0(pretrained=True)"),  # no meta: arch(pretrained=...)
        ("resnet18", "resnet18(weights='DEFAULT')"),  # in model_meta: arch(weights='DEFAULT')
    ],
)
def test_weights_none_means_not_given_and_a_failed_download_says_what_to_pass(
    offline_hub: list[str], name: str, call: str
) -> None:
    import urllib.error

    with torch.device("meta"), pytest.raises(LensError) as caught:
        create_vision_model(builder(name), 5, weights=None)
    message = str(caught.value)
    assert offline_hub and offline_hub[0].startswith("https://download.pytorch.org/")
    assert isinstance(caught.value.__cause__, urllib.error.URLError)
    assert f"fastai's call {call} failed with URLError" in message
    assert "pass pretrained=False" in message
    assert f"create_vision_model({name}(weights=None), n_out)" in message


def test_a_bad_download_hash_says_what_to_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    import torch.hub

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def bad_hash(url: str, destination: str, hash_prefix: str | None, **kwargs: object) -> None:
        raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "0badc0de")')

    monkeypatch.setattr(torch.hub, "download_url_to_file", bad_hash)
    with torch.device("meta"), pytest.raises(LensError, match="pretrained=False") as caught:
        create_vision_model("resnet18", 5)
    assert "invalid hash value" in str(caught.value)
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_other_failures_of_a_builder_are_not_called_download_failures() -> None:
    def broken(**kwargs: object) -> nn.Module:
        raise RuntimeError("not a download")

    def missing_file(**kwargs: object) -> nn.Module:
        raise FileNotFoundError("my_weights.pt")

    with pytest.raises(RuntimeError, match="not a download"):
        create_vision_model(broken, 2)  # pretrained, but the error is not torch.hub's
    with pytest.raises(FileNotFoundError):
        create_vision_model(missing_file, 2, pretrained=False)  # no weights were asked for
    with pytest.raises(LensError, match="could not get its pretrained weights") as caught:
        create_vision_model(missing_file, 2)  # an OSError while getting weights
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_the_docstring_says_what_to_pass_for_random_weights() -> None:
    opening = (create_vision_model.__doc__ or "").split("\n\n")[1]
    assert "pretrained=True" in opening and 'weights=None`` means "not given"' in opening
    assert "pretrained=False" in opening


# ---------------------------------------------------------------------------------------------
# The probe: what fastai's dummy forward found, and which child fails where.


def test_probe_features_names_the_child_that_fails_and_the_size() -> None:
    with torch.device("meta"):  # shapes only: the 2048 px forwards cost nothing
        body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    found = probe_features(body)
    assert found.sizes_tried == tuple((s, s) for s in (32, 64, 128, 256, 512, 1024, 2048))
    assert found.size == (2048, 2048) and found.output_shape is None
    assert (found.failed_child, found.input_shape) == (3, (1, 8 * 2046 * 2046))
    assert isinstance(found.error, RuntimeError) and found.feature_map_children == 2
    with pytest.raises(LensError) as caught:
        num_features(body)
    assert "at 2048x2048, child 3 (Linear) fails on the output of child 2" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_probe_features_reports_a_body_that_runs() -> None:
    body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    body.train()
    found = probe_features(body, max_size=32)
    assert (found.output_shape, found.output_type, found.n_features) == ((1, 8), "Tensor", 8)
    assert found.error is None and found.failed_child is None and found.sizes_tried == ((32, 32),)
    assert found.feature_map_children == 3
    assert all(module.training for module in body.modules()), "training flags not restored"


def test_probe_features_runs_a_body_that_is_not_a_sequential_whole() -> None:
    found = probe_features(_RecordsInputDevice(), max_size=32)
    assert found.output_shape == (1, 2)
    assert found.failed_child is None and found.feature_map_children is None
    found = probe_features(nn.Sequential(), max_size=32)
    assert isinstance(found.error, IndexError)  # fastai has no output to measure either
    with pytest.raises(LensError, match=r"empty nn\.Sequential"):
        create_vision_model(meta_model("resnet18"), 3, cut=0)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["resnet18", "retries"])
def test_probe_features_draws_what_fastai_draws(name: str) -> None:
    # fastai's num_features_model from 32 px, as create_vision_model calls it: the same count
    # and the same random numbers drawn, retries included (a seeded model gets fastai's
    # weights). On the CPU: on the meta device nothing is drawn.
    if name == "resnet18":
        body = nn.Sequential(*list(builder(name)(weights=None).children())[:-2])
    else:
        body = nn.Sequential(nn.Conv2d(3, 4, 40), nn.ReLU())  # fails at 32 px, runs at 64
    with torch.random.fork_rng():
        torch.manual_seed(0)
        expected = num_features_model(body)
        after_fastai = torch.rand(3)
        torch.manual_seed(0)
        found = probe_features(body)
        after_ours = torch.rand(3)
    assert found.n_features == expected
    assert len(found.sizes_tried) == (1 if name == "resnet18" else 2)
    assert torch.equal(after_ours, after_fastai)


# ---------------------------------------------------------------------------------------------
# The head must fit what the body returns: a transformer cut like a CNN is refused.


def _timm_vit(**kwargs: Any) -> nn.Module:
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        return timm.create_model("vit_tiny_patch16_224", pretrained=False, **kwargs)


def test_a_timm_vit_cut_like_a_cnn_is_refused_not_given_a_head_of_the_wrong_width() -> None:
    # At img_size=32 the patch embedding runs on the probe: (batch, tokens, dim) = (1, 4, 192),
    # which num_features would read as 4 channels.
    with pytest.raises(LensError) as caught:
        create_vision_model(_timm_vit(img_size=32), 3, cut=-1)
    message = str(caught.value)
    assert "returns a tensor of shape (1, 4, 192) on a 1x3x32x32 dummy input" in message
    assert "not feature maps (a 4-d tensor" in message and "would read 4 as" in message
    assert "pool=False" in message and "vision_learner(dls, 'vit_tiny_patch16_224')" in message


def test_a_timm_vit_at_its_own_size_says_which_child_fails_and_the_timm_way() -> None:
    with pytest.raises(LensError) as caught:
        create_vision_model(_timm_vit(), 3, cut=-1)
    message = str(caught.value)
    assert "at 2048x2048, child 0 (PatchEmbed) fails on the input" in message
    assert "(32, 64, 128, 256, 512, 1024, 2048)" in message  # never 224
    assert "timm.create_model('vit_tiny_patch16_224', num_classes=0)" in message


def test_the_timm_way_the_refusal_names_builds_a_model_that_runs() -> None:
    timm = pytest.importorskip("timm")
    body = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    head = create_head(body.num_features, 3, pool=False)
    model = create_vision_model(body, 3, cut=lambda m: m, custom_head=head)
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 224, 224)).shape == (2, 3)


class _Tokens(nn.Module):
    """A patch embedding: (batch, channels, h, w) -> (batch, tokens, channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


@pytest.mark.parametrize(
    ("layers", "kwargs", "message"),
    [
        ([nn.Conv2d(3, 8, 3), _Tokens()], {}, r"shape \(1, 900, 8\).*not feature maps"),
        ([nn.Conv2d(3, 8, 3), nn.Flatten()], {}, r"shape \(1, 7200\).*not feature maps"),
        ([nn.Conv2d(3, 8, 3)], {"pool": False}, r"\(1, 8, 30, 30\).*takes a 2-d tensor"),
    ],
    ids=["tokens", "flat", "maps-without-pool"],
)
def test_a_body_the_head_cannot_take_is_refused(
    layers: list[nn.Module], kwargs: dict[str, Any], message: str
) -> None:
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Linear(8, 2))
    with pytest.raises(LensError, match=message):
        create_vision_model(model, 3, cut=len(layers), **kwargs)


def test_a_pooled_body_with_pool_false_gets_a_head_that_runs() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)
    )
    vision_model = create_vision_model(model, 3, cut=3, pool=False)
    assert isinstance(vision_model[1][0], nn.BatchNorm1d) and vision_model[1][0].num_features == 8
    with torch.no_grad():
        assert vision_model.eval()(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
