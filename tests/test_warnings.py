"""quiet_known_warnings filters exactly its listed warnings, whatever their category."""

from __future__ import annotations

import warnings

import pytest

from transferlens.tutorial import quiet_known_warnings

JIT = "`torch.jit.script` is deprecated. Please switch to `torch.compile` or `torch.export`."
JIT_314 = "`torch.jit.script` is not supported in Python 3.14+ and may break. Please switch."


def _caught(message: str, category: type[Warning], module: str) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_warnings()
        warnings.warn_explicit(message, category, "_script.py", 1, module=module)
    return caught


@pytest.mark.parametrize("message", [JIT, JIT_314])
@pytest.mark.parametrize("category", [FutureWarning, DeprecationWarning])
def test_torch_jit_script_warning_is_filtered_in_either_category(category, message):
    assert _caught(message, category, "torch.jit._script") == []


def test_same_message_from_another_module_is_kept():
    assert len(_caught(JIT, FutureWarning, "mylib.models")) == 1


def test_other_torch_jit_warnings_are_kept():
    message = "`torch.jit.script_method` is deprecated. Please switch to `torch.compile`."
    assert len(_caught(message, FutureWarning, "torch.jit._script")) == 1
