"""``module_diff``: which children did fastai remove, add or change?"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from torch import nn

from .._recipe.checks import check_module
from .._recipe.errors import LensError
from .tables import html_table, type_name

# Reprs of some modules (a fastai ``Lambda``) contain a function's memory address.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")

DiffKind = Literal["removed", "added", "changed"]


@dataclass(frozen=True)
class DiffEntry:
    """One difference found by ``module_diff``.

    Attributes:
        kind: ``"removed"`` (only in ``a``), ``"added"`` (only in ``b``) or ``"changed"``.
        path_a: dotted path of the child in ``a`` (``None`` when added).
        path_b: dotted path of the child in ``b`` (``None`` when removed).
        before: the child in ``a``, described (its repr for a leaf, its type and number of
            children otherwise); ``None`` when added.
        after: the child in ``b``, described the same way; ``None`` when removed.
    """

    kind: DiffKind
    path_a: str | None
    path_b: str | None
    before: str | None
    after: str | None

    @property
    def path(self) -> str:
        """The path to show: ``path_a``, or ``"path_a -> path_b"`` where they differ."""
        if self.path_a is None:
            return str(self.path_b)
        if self.path_b is None or self.path_b == self.path_a:
            return self.path_a
        return f"{self.path_a} -> {self.path_b}"


class ModuleDiff:
    """Children removed, added and changed between two modules. Build it with ``module_diff``.

    Attributes:
        entries: every ``DiffEntry``, in the order the children appear.
        removed: dotted paths (in ``a``) of the children only ``a`` has.
        added: dotted paths (in ``b``) of the children only ``b`` has.
        changed: dotted paths (in ``a``) of the children whose type or leaf repr differs.
    """

    def __init__(self, type_a: str, type_b: str, match: str, entries: Sequence[DiffEntry]) -> None:
        self._type_a = type_a
        self._type_b = type_b
        self._match = match
        self.entries: list[DiffEntry] = list(entries)
        self.removed: list[str] = [str(e.path_a) for e in self.entries if e.kind == "removed"]
        self.added: list[str] = [str(e.path_b) for e in self.entries if e.kind == "added"]
        self.changed: list[str] = [str(e.path_a) for e in self.entries if e.kind == "changed"]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def _summary(self) -> str:
        counts = (
            f"{len(self.removed)} removed, {len(self.added)} added, {len(self.changed)} changed"
        )
        return f"{self._type_a} -> {self._type_b} (match={self._match!r}): {counts}"

    def __str__(self) -> str:
        rows = [[e.kind, e.path, e.after if e.kind == "added" else e.before] for e in self.entries]
        if not rows:
            return self._summary()
        kind_width = max(len(row[0]) for row in rows)
        path_width = max(len(row[1]) for row in rows)
        lines = [self._summary()]
        for entry, (kind, path, description) in zip(self.entries, rows, strict=True):
            lines.append(f"{kind.ljust(kind_width)}  {path.ljust(path_width)}  {description}")
            if entry.kind == "changed":
                lines.append(f"{' ' * (kind_width + path_width + 4)}-> {entry.after}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = [[e.kind, e.path, e.before or "", e.after or ""] for e in self.entries]
        return html_table(
            ["kind", "path", "in a", "in b"], rows, self._summary(), "transferlens-diff"
        )


def _describe(module: nn.Module) -> str:
    children = len(list(module.children()))
    if children:
        noun = "child" if children == 1 else "children"
        return f"{type_name(module)} ({children} {noun})"
    return _signature(module)


def _signature(module: nn.Module) -> str:
    """The module's repr on one line, without memory addresses: equal for equal structure."""
    text = _ADDRESS.sub("", repr(module))
    return text if "\n" not in text else " ".join(line.strip() for line in text.splitlines())


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


_Item = tuple[str, nn.Module]  # (dotted path, module)
_Spliced = list[tuple[str, nn.Module, list[int]]]  # (path, container, indices of its items)


def _children_by_path(module: nn.Module, prefix: str) -> list[_Item]:
    return [(_join(prefix, name), child) for name, child in module.named_children()]


def _children_by_structure(module: nn.Module, prefix: str, spliced: _Spliced) -> list[_Item]:
    """Children with plain ``nn.Sequential`` containers spliced in: ``Sequential(x, y)`` computes
    exactly ``x`` then ``y``, so fastai's ``Sequential(body, head)`` lines up with the original
    model's children. Each spliced container is recorded in ``spliced``, outermost first."""
    flat: list[_Item] = []

    def splice(parent: nn.Module, parent_prefix: str) -> None:
        for path, child in _children_by_path(parent, parent_prefix):
            if type(child) is nn.Sequential and len(child) > 0:
                record: list[int] = []
                spliced.append((path, child, record))
                start = len(flat)
                splice(child, path)
                record.extend(range(start, len(flat)))
            else:
                flat.append((path, child))

    splice(module, prefix)
    return flat


def _removed(path: str, module: nn.Module) -> DiffEntry:
    return DiffEntry("removed", path, None, _describe(module), None)


def _added(path: str, module: nn.Module) -> DiffEntry:
    return DiffEntry("added", None, path, None, _describe(module))


def _changes_as_leaf(a: nn.Module, b: nn.Module) -> bool:
    """Whether a pair is reported as one change (not looked into): another type, or a leaf
    whose repr differs."""
    if type(a) is not type(b):
        return True
    is_leaf = not list(a.children()) or not list(b.children())
    return is_leaf and _signature(a) != _signature(b)


def _diff_pair(
    a: nn.Module, b: nn.Module, path_a: str, path_b: str, by_structure: bool
) -> list[DiffEntry]:
    if _changes_as_leaf(a, b):
        return [DiffEntry("changed", path_a, path_b, _describe(a), _describe(b))]
    if _signature(a) == _signature(b):
        return []
    return _diff_children(a, b, path_a, path_b, by_structure)


def _is_substantial(module: nn.Module) -> bool:
    """Whether matching this module is evidence of kept structure (a ReLU matches anything)."""
    return any(True for _ in module.parameters()) or any(True for _ in module.children())


def _whole_containers(
    spliced: _Spliced,
    partner: dict[int, int],
    changed: set[tuple[int, int]],
    items: Sequence[_Item],
    a_side: bool,
) -> dict[int, tuple[str, nn.Module, list[int]]]:
    """Spliced containers that were replaced as a whole: something in them differs, and none of
    their layers with weights (or children) is kept as it was.

    Such a container is reported once (fastai's head is *added*, not nine layers of it, two of
    which happen to line up with AlexNet's ``classifier``). Returns them by the index of their
    first item.
    """
    wholes: dict[int, tuple[str, nn.Module, list[int]]] = {}
    covered: set[int] = set()
    for path, container, indices in spliced:  # outermost first
        if not indices or covered.intersection(indices):
            continue
        differs = kept = False
        for index in indices:
            pair = (
                None
                if index not in partner
                else ((index, partner[index]) if a_side else (partner[index], index))
            )
            if pair is None or pair in changed:
                differs = True
            elif _is_substantial(items[index][1]):
                kept = True
        if differs and not kept:
            wholes[indices[0]] = (path, container, indices)
            covered.update(indices)
    return wholes


def _diff_by_structure(a: nn.Module, b: nn.Module, prefix_a: str, prefix_b: str) -> list[DiffEntry]:
    spliced_a: _Spliced = []
    spliced_b: _Spliced = []
    items_a = _children_by_structure(a, prefix_a, spliced_a)
    items_b = _children_by_structure(b, prefix_b, spliced_b)

    # Align the two sequences by class name; aligned children are then compared in depth.
    matcher = difflib.SequenceMatcher(
        a=[type_name(child) for _, child in items_a],
        b=[type_name(child) for _, child in items_b],
        autojunk=False,
    )
    pairs = [
        (block.a + k, block.b + k)
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]
    changed = {(i, j) for i, j in pairs if _changes_as_leaf(items_a[i][1], items_b[j][1])}
    partner_a = dict(pairs)
    partner_b = {j: i for i, j in pairs}
    whole_a = _whole_containers(spliced_a, partner_a, changed, items_a, a_side=True)
    whole_b = _whole_containers(spliced_b, partner_b, changed, items_b, a_side=False)
    in_whole_a = {index for _, _, items in whole_a.values() for index in items}
    in_whole_b = {index for _, _, items in whole_b.values() for index in items}
    pairs = [(i, j) for i, j in pairs if i not in in_whole_a and j not in in_whole_b]

    entries: list[DiffEntry] = []

    def one_sided(index_a: int, stop_a: int, index_b: int, stop_b: int) -> None:
        for i in range(index_a, stop_a):
            if i in whole_a:
                entries.append(_removed(whole_a[i][0], whole_a[i][1]))
            elif i not in in_whole_a:
                entries.append(_removed(*items_a[i]))
        for j in range(index_b, stop_b):
            if j in whole_b:
                entries.append(_added(whole_b[j][0], whole_b[j][1]))
            elif j not in in_whole_b:
                entries.append(_added(*items_b[j]))

    next_a = next_b = 0
    for i, j in pairs:
        one_sided(next_a, i, next_b, j)
        (path_a, child_a), (path_b, child_b) = items_a[i], items_b[j]
        entries.extend(_diff_pair(child_a, child_b, path_a, path_b, by_structure=True))
        next_a, next_b = i + 1, j + 1
    one_sided(next_a, len(items_a), next_b, len(items_b))
    return _merge_replacements(entries)


def _merge_replacements(entries: list[DiffEntry]) -> list[DiffEntry]:
    """A child removed and another added at the same path is one change (ReLU -> GELU)."""
    added = {entry.path_b: entry for entry in entries if entry.kind == "added"}
    merged: list[DiffEntry] = []
    used: set[str] = set()
    for entry in entries:
        if entry.kind == "removed" and entry.path_a in added and entry.path_a not in used:
            after = added[entry.path_a]
            merged.append(
                DiffEntry("changed", entry.path_a, after.path_b, entry.before, after.after)
            )
            used.add(str(entry.path_a))
        elif not (entry.kind == "added" and entry.path_b in used):
            merged.append(entry)
    return merged


def _diff_children(
    a: nn.Module, b: nn.Module, prefix_a: str, prefix_b: str, by_structure: bool
) -> list[DiffEntry]:
    if by_structure:
        return _diff_by_structure(a, b, prefix_a, prefix_b)
    children_a = _children_by_path(a, prefix_a)
    children_b = _children_by_path(b, prefix_b)
    matcher = difflib.SequenceMatcher(
        a=[path for path, _ in children_a], b=[path for path, _ in children_b], autojunk=False
    )
    entries: list[DiffEntry] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":  # same names: compare what is behind them
            for (path_a, child_a), (path_b, child_b) in zip(
                children_a[i1:i2], children_b[j1:j2], strict=True
            ):
                entries.extend(_diff_pair(child_a, child_b, path_a, path_b, by_structure=False))
        else:
            entries.extend(_removed(path, child) for path, child in children_a[i1:i2])
            entries.extend(_added(path, child) for path, child in children_b[j1:j2])
    return entries


def module_diff(
    a: nn.Module, b: nn.Module, match: Literal["structure", "path"] = "structure"
) -> ModuleDiff:
    """Compare the children of two modules: which were removed, added or changed.

    Two children are compared when they sit at the same place; they differ when their types
    differ or, for leaves, when their reprs differ (``Linear(512, 1000)`` vs ``Linear(512, 37)``).
    A removed or added child is reported once, not with all its descendants. The two roots
    themselves are not compared: ``a`` and ``b`` may be different container classes.

    "The same place" depends on ``match``:

    - ``"structure"`` (the default): plain ``nn.Sequential`` containers are spliced into their
      parents (``Sequential(x, y)`` computes exactly ``x`` then ``y``) and children are matched in
      order by their repr, so renamed children still match. That is what makes fastai's models
      comparable with torchvision's: fastai's body is ``nn.Sequential(*list(model.children())
      [:cut])``, so ``module_diff(resnet, body)`` shows just ``avgpool`` and ``fc`` removed, and
      ``module_diff(resnet, learn.model)`` also shows the head, added as one entry (``1``).
    - ``"path"``: children are matched by dotted path (``layer1.0.conv1``), as in ``state_dict``
      keys; fastai's ``0``, ``1``, ... then match none of ResNet's ``conv1``, ``bn1``, ...

    Args:
        a: the module before (a torchvision model).
        b: the module after (the fastai model, or its body ``b[0]``).
        match: ``"structure"`` or ``"path"``, see above.

    Returns:
        A ``ModuleDiff``; print it, or read ``.removed``, ``.added``, ``.changed`` (dotted paths)
        and ``.entries``.

    Raises:
        LensError: when ``a`` or ``b`` is not a module, or ``match`` is unknown.

    Examples:
        >>> from torch import nn
        >>> a = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 10))
        >>> b = nn.Sequential(nn.Sequential(a[0], a[1]), nn.Linear(8, 2))
        >>> print(module_diff(a, b))
        Sequential -> Sequential (match='structure'): 0 removed, 0 added, 1 changed
        changed  2 -> 1  Linear(in_features=8, out_features=10, bias=True)
                         -> Linear(in_features=8, out_features=2, bias=True)
        >>> module_diff(a, b, match="path").changed
        ['0', '1']
    """
    check_module(a, "a")
    check_module(b, "b")
    if match not in ("path", "structure"):
        raise LensError(f"`match` must be 'structure' or 'path', got {match!r}.")
    entries = _diff_children(a, b, "", "", by_structure=match == "structure")
    return ModuleDiff(type_name(a), type_name(b), match, entries)
