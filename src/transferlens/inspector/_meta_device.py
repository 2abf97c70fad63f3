"""Building a model for its structure only: on PyTorch's ``meta`` device, without any numbers.

Where fastai cuts a model, its parameter groups, its head and what trains when frozen depend on
the model's modules and tensor shapes, never on their values. On the ``meta`` device a tensor has
a shape and a dtype but no storage, so ``vit_h_14`` (632 M parameters) builds in a fraction of a
second and a forward pass computes only output shapes, whatever the input size.

Three ways to build, tried in this order:

1. ``with torch.device("meta")``: every tensor created while building is a meta tensor. Most
   torchvision builders work this way.
2. ``empty_weights()``: only parameters and buffers go to the meta device; plain tensors stay on
   the CPU. For builders that compute with real numbers while they build (torchvision's RegNets
   read values out of a tensor, which fails on ``meta`` with "Cannot copy out of meta tensor").
   This is what ``accelerate.init_empty_weights(include_buffers=True)`` does.
3. The CPU, as usual, when neither works; the caller says so.

On the meta device ``torch.nn.init``'s initializers are skipped while building: they only write
values. The probe forward (``probe_features``) then runs on meta tensors too: its cost does not
grow with the input size, which matters where fastai retries at sizes up to 2048 pixels before
giving up (``googlenet`` with random weights).

Many of PyTorch's meta kernels are written in Python (batch norm, layer norm, most elementwise
operations: about a millisecond each), and a model repeats the same operation on the same
shapes many times. ``shape_memo()`` remembers, per operation and per exact input metadata
(shapes, strides, dtypes, every other argument), the metadata of the output, and answers a
repeat without running the kernel again. A meta kernel's output metadata is a function of
exactly those inputs, so the answers are the kernel's own; failures are never remembered (they
run again and raise again). Operations that alias their inputs (views) or write into an argument
other than ``self`` always run. The memory lasts for one ``with shape_memo():`` block (an inner
block shares the outer one's) and is dropped when the outermost block ends.

``weights_not_loaded()`` builds what a pretrained call builds (``resnet18(weights="DEFAULT")``,
``googlenet(pretrained=True)``) without the weights: the builder resolves its weights and sets
itself up for them as usual (``googlenet`` drops its auxiliary classifiers after loading), but
nothing is downloaded or loaded. The structure fastai gets from its default
``pretrained=True`` call can differ from the ``weights=None`` one.

Built on PyTorch's private ``torch.utils._python_dispatch`` (``shape_memo``) and on patching
``nn.Module`` and torchvision methods for the duration of a block (``empty_weights``,
``weights_not_loaded``): not thread-safe, and only for inspecting structure.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map


class _Spec:
    """The metadata of one meta tensor an operation returned."""

    __slots__ = ("dtype", "shape", "stride")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.shape, self.stride, self.dtype = tuple(tensor.shape), tensor.stride(), tensor.dtype

    def same_as(self, tensor: torch.Tensor) -> bool:
        return (self.shape, self.stride, self.dtype) == (
            tuple(tensor.shape),
            tensor.stride(),
            tensor.dtype,
        )

    def new(self) -> torch.Tensor:
        return torch.empty_strided(self.shape, self.stride, dtype=self.dtype, device="meta")


class _NotMeta(Exception):
    """An argument that is not a meta tensor (its values matter): do not remember."""


def _key(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        if value.device.type != "meta":
            raise _NotMeta
        return (
            "tensor",
            tuple(value.shape),
            value.stride(),
            value.storage_offset(),
            value.dtype,
            value.requires_grad,
        )
    if isinstance(value, (list, tuple)):
        if all(type(item) is int for item in value):  # sizes: the common case, kept cheap
            return (type(value).__name__, *value)
        return (type(value).__name__, *(_key(item) for item in value))
    if isinstance(value, dict):
        return ("dict", *sorted((name, _key(item)) for name, item in value.items()))
    if value is None or isinstance(
        value, (bool, int, float, str, torch.dtype, torch.device, torch.layout, torch.memory_format)
    ):
        return (type(value).__name__, value)
    raise _NotMeta  # anything else (a generator...): not remembered


_IN_PLACE = object()  # remembered answer of an in-place operation: return `self`, unchanged


def _in_place_on_self(schema: Any) -> bool:
    arguments, returns = schema.arguments, schema.returns
    if not arguments or len(returns) != 1:
        return False
    first, result = arguments[0].alias_info, returns[0].alias_info
    others_written = any(
        arg.alias_info is not None and arg.alias_info.is_write for arg in arguments[1:]
    )
    return (
        first is not None
        and first.is_write
        and result is not None
        and result.before_set == first.before_set
        and not others_written
    )


def _new_if_spec(item: Any) -> Any:
    return item.new() if isinstance(item, _Spec) else item


#: operation -> "in place", "pure" or "other" (always runs): one entry per ATen operation seen, a
#: fact about the operation's schema, so it is kept for the process (bounded by torch's operators).
_KINDS: dict[Any, str] = {}


def _kind(func: Any) -> str:
    kind = _KINDS.get(func)
    if kind is None:
        schema = func._schema
        if _in_place_on_self(schema):
            kind = "in place"
        elif schema.is_mutable or any(ret.alias_info is not None for ret in schema.returns):
            kind = "other"
        else:
            kind = "pure"
        _KINDS[func] = kind
    return kind


class _ShapeMemo(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.memo: dict[Any, Any] = {}

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        kind = _kind(func)
        if kind == "other":
            return func(*args, **kwargs)
        in_place = kind == "in place"
        try:
            key = (func, _key(args), _key(kwargs))
        except _NotMeta:
            return func(*args, **kwargs)
        remembered = self.memo.get(key)
        if remembered is _IN_PLACE:
            return args[0]
        if remembered is not None:
            return tree_map(_new_if_spec, remembered)
        before = _Spec(args[0]) if in_place else None
        output = func(*args, **kwargs)
        if in_place:
            # Remember only what leaves `self` as it was (not resize_, unsqueeze_, ...).
            if output is args[0] and before is not None and before.same_as(output):
                self.memo[key] = _IN_PLACE
            return output
        leaves, _ = tree_flatten(output)
        tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
        plain = all(isinstance(leaf, (torch.Tensor, int, float, bool)) for leaf in leaves)
        if plain and all(t.device.type == "meta" and t.storage_offset() == 0 for t in tensors):
            self.memo[key] = tree_map(
                lambda item: _Spec(item) if isinstance(item, torch.Tensor) else item, output
            )
        return output


#: The memo of the outermost ``shape_memo()`` block being run (empty outside every block).
_ACTIVE: list[_ShapeMemo] = []


@contextlib.contextmanager
def shape_memo() -> Iterator[None]:
    """Inside the block, answer a repeated operation on ``meta`` tensors from memory.

    Many of PyTorch's meta kernels are written in Python (batch norm, layer norm, most
    elementwise operations) and cost about a millisecond each; a model repeats the same
    operation on the same shapes many times. This remembers, per operation and per exact input
    metadata (shapes, strides, dtypes and every other argument), the metadata of the output, and
    answers a repeat without running the kernel again. The answers are the kernel's own: its
    output depends on nothing else. Failures are never remembered (they run, and raise, every
    time); operations on real tensors, views, and in-place operations that change their
    input's shape always run. The memory lasts for the block: a block inside another one uses
    the outer block's memory, and the outermost block drops it when it ends.

    Yields:
        Nothing; use it in a ``with`` statement, as the example shows.

    Examples:
        >>> conv = nn.Conv2d(3, 16, 3, device="meta")
        >>> with shape_memo():
        ...     shapes = [conv(torch.empty(8, 3, 64, 64, device="meta")).shape for _ in "ab"]
        >>> shapes[0] == shapes[1] == (8, 16, 62, 62)
        True
    """
    if _ACTIVE:  # inside another block: its memory answers
        yield
        return
    mode = _ShapeMemo()
    _ACTIVE.append(mode)
    try:
        with mode:
            yield
    finally:
        _ACTIVE.remove(mode)


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Put every parameter and buffer registered inside the block on the ``meta`` device.

    Patches ``nn.Module.register_parameter`` and ``nn.Module.register_buffer`` (which
    ``module.weight = nn.Parameter(...)`` goes through) for the duration of the block, as
    ``accelerate.init_empty_weights(include_buffers=True)`` does. Tensors that are not registered
    stay where they were created, so a builder can still compute with them.
    """
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def parameter_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register_parameter(module, name, param)
        if param is not None and param.device.type != "meta":
            meta = type(param)(param.to("meta"), requires_grad=param.requires_grad)
            module._parameters[name] = meta

    def buffer_on_meta(
        module: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True
    ) -> None:
        register_buffer(module, name, tensor, persistent)
        if tensor is not None:
            module._buffers[name] = tensor.to("meta")

    nn.Module.register_parameter = parameter_on_meta  # type: ignore[method-assign]
    nn.Module.register_buffer = buffer_on_meta  # type: ignore[method-assign]
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]


class _NotLoaded(dict):  # type: ignore[type-arg]
    """What ``get_state_dict`` returns inside ``weights_not_loaded``: an empty state dict that
    ``load_state_dict`` skips (so a builder that edits the keys first, as densenet's, still
    runs)."""


@contextlib.contextmanager
def weights_not_loaded() -> Iterator[list[Any]]:
    """Build pretrained models inside the block without downloading or loading their weights.

    Patches torchvision's ``WeightsEnum.get_state_dict`` (through which every torchvision
    builder fetches its weights) to return an empty stand-in, and ``nn.Module.load_state_dict``
    to skip that stand-in, for the duration of the block. Everything else a builder does for
    its weights still happens: ``num_classes`` set from the weights' categories, googlenet's
    ``aux1`` and ``aux2`` dropped, a ViT's ``image_size`` taken from the weights. The model
    keeps its initial (random, or meta) values.

    Yields:
        The weights the builders asked for, in order (a list that grows inside the block).

    Examples:
        >>> import torchvision
        >>> with weights_not_loaded() as asked, torch.device("meta"):
        ...     model = torchvision.models.googlenet(weights="DEFAULT")
        >>> asked, model.aux1, model.fc.out_features
        ([GoogLeNet_Weights.IMAGENET1K_V1], None, 1000)
    """
    from torchvision.models._api import WeightsEnum

    get_state_dict = WeightsEnum.get_state_dict
    load_state_dict = nn.Module.load_state_dict
    asked: list[Any] = []

    def stand_in(weights: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        asked.append(weights)
        return _NotLoaded()

    def skip_stand_in(module: nn.Module, state_dict: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(state_dict, _NotLoaded):
            return None
        return load_state_dict(module, state_dict, *args, **kwargs)

    WeightsEnum.get_state_dict = stand_in  # type: ignore[method-assign]
    nn.Module.load_state_dict = skip_stand_in  # type: ignore[method-assign,assignment]
    try:
        yield asked
    finally:
        WeightsEnum.get_state_dict = get_state_dict  # type: ignore[method-assign]
        nn.Module.load_state_dict = load_state_dict  # type: ignore[method-assign]


@dataclass(frozen=True)
class Built:
    """A model built for its structure, and how.

    Attributes:
        model: The model.
        device: ``"meta"`` (no numbers) or ``"cpu"`` (a fallback: real, random numbers).
        context: Builds more modules (a head) the same way: a fresh context manager per call.
        note: Why the meta device could not be used, or ``""``.
    """

    model: nn.Module
    device: str
    context: Callable[[], contextlib.AbstractContextManager[Any]]
    note: str = ""


def _meta_device() -> contextlib.AbstractContextManager[Any]:
    return torch.device("meta")


def _no_context() -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext()


#: ``torch.nn.init``'s in-place initializers (``kaiming_normal_``, ``trunc_normal_``, ...).
_INITIALIZERS = tuple(
    name for name in dir(nn.init) if name.endswith("_") and not name.startswith("_")
)


@contextlib.contextmanager
def initializers_skipped() -> Iterator[None]:
    """Inside the block, ``nn.init.kaiming_normal_(tensor, ...)`` and the others return
    ``tensor`` untouched (looked up by name at call time, as builders do: ``nn.init.X_``)."""
    saved = {name: getattr(nn.init, name) for name in _INITIALIZERS}

    def untouched(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    for name in _INITIALIZERS:
        setattr(nn.init, name, untouched)
    try:
        yield
    finally:
        for name, initializer in saved.items():
            setattr(nn.init, name, initializer)


def _all_on_meta(model: nn.Module) -> bool:
    tensors = [*model.parameters(), *model.buffers()]
    return all(tensor.device.type == "meta" for tensor in tensors)


def build_for_structure(builder: Callable[..., Any], **kwargs: Any) -> Built:
    """Build ``builder(**kwargs)`` on the meta device if it can be, else on the CPU.

    Tries ``torch.device("meta")``, then ``empty_weights()``, then the CPU (see the module's
    docstring). On the meta device ``torch.nn.init``'s initializers are skipped (they would
    only write values, and a meta tensor has none; most of a build's time went there).
    Warnings the builder emits (e.g. googlenet's about its initialization) are silenced: the
    weights are not what the caller looks at.

    Args:
        builder: A model builder, e.g. ``torchvision.models.resnet18``.
        **kwargs: Passed to the builder, e.g. ``weights=None``.

    Returns:
        The model, the device it is on, and the context to build more modules the same way.
    """
    failures = []
    for context in (_meta_device, empty_weights):
        try:
            with warnings.catch_warnings(), context(), initializers_skipped():
                warnings.simplefilter("ignore")
                model = builder(**kwargs)
        except Exception as error:  # any failure: try the next way
            failures.append(f"{type(error).__name__}: {error}")
            continue
        if _all_on_meta(model):
            return Built(model, "meta", context)
        failures.append("some parameters or buffers were created outside nn.Module registration")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = builder(**kwargs)
    note = "could not be built on the meta device (" + "; ".join(failures) + ")"
    return Built(model, "cpu", _no_context, note)
