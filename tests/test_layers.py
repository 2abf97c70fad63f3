"""The package's three layers, and the one direction their imports go.

- the library (``transferlens``): the recipe (``_recipe/``) and its reports (``_reports/``);
- the inspector (``transferlens.inspector``): the ``transferlens`` command and the atlas;
- the tutorial machinery (``transferlens.tutorial``): what the site's pages import.

The recipe imports nothing from the reports, the inspector or the tutorial; the reports nothing
from the inspector or the tutorial; the inspector uses the library through its public names, at
the top of its modules; the tutorial uses both. These tests read the sources (an import inside a
function body is invisible to an import graph of a running process) and run the package.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import transferlens
from transferlens import inspector, tutorial

PACKAGE = Path(transferlens.__file__).parent
TESTS = Path(__file__).parent


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool, list[str]]]:
    """(absolute module imported, at the module's top level?, names) for every import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else (
        _module_name(path)
    )
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((module, id(node) in top, [alias.name for alias in node.names]))
    return found


def _transferlens_imports(path: Path) -> list[tuple[str, bool, list[str]]]:
    return [entry for entry in _imports(path) if entry[0].split(".")[0] == "transferlens"]


LAYERS = {
    "_recipe": {"transferlens._recipe"},
    "_reports": {"transferlens._recipe", "transferlens._reports"},
}


@pytest.mark.parametrize("folder", sorted(LAYERS))
def test_the_library_imports_nothing_from_the_layers_above_it(folder: str) -> None:
    paths = _modules(folder)
    assert len(paths) >= 5
    for path in paths:
        for module, _, _ in _transferlens_imports(path):
            assert any(module == allowed or module.startswith(f"{allowed}.") for allowed in
                       LAYERS[folder]), f"{path.relative_to(PACKAGE)} imports {module}"  # fmt: skip


#: The one private module the inspector may import: the text formatting its output shares with
#: the reports (aligned tables, learning rates written one way), so both print alike.
SHARED_FORMATTING = "transferlens._reports.tables"


def test_the_inspector_uses_the_library_through_its_public_names_at_the_top() -> None:
    paths = _modules("inspector")
    assert {p.name for p in paths} >= {"__init__.py", "cli.py", "_inspect.py", "_atlas.py"}
    for path in paths:
        for module, at_top, names in _transferlens_imports(path):
            where = f"{path.relative_to(PACKAGE)} imports {module} {names}"
            if module in ("transferlens", SHARED_FORMATTING):
                assert at_top, f"{where} inside a function body: import it at the top"
                if module == "transferlens":
                    assert set(names) <= set(transferlens.__all__), f"{where}: not public"
            else:
                # its own modules; cli.py defers them until its arguments are parsed
                assert module.startswith("transferlens.inspector"), where


def test_the_tutorial_uses_the_library_and_the_inspector_through_public_names() -> None:
    for path in _modules("tutorial"):
        for module, _, names in _transferlens_imports(path):
            where = f"{path.relative_to(PACKAGE)} imports {module} {names}"
            if module == "transferlens":
                assert set(names) <= {*transferlens.__all__, "tutorial", "inspector"}, where
            elif module == "transferlens.inspector":
                assert set(names) <= set(inspector.__all__), where
            else:
                assert module.startswith("transferlens.tutorial"), where


def test_private_modules_declare_no_public_names() -> None:
    """Only the three public faces have ``__all__``: a private module's list would name what the
    package never exports."""
    faces = {PACKAGE / "__init__.py", PACKAGE / "inspector/__init__.py",
             PACKAGE / "tutorial/__init__.py", PACKAGE / "inspector/cli.py"}  # fmt: skip
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in faces:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assigned = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                    if isinstance(t, ast.Name)}  # fmt: skip
        assert "__all__" not in assigned, f"{path.relative_to(PACKAGE)} has an __all__"


@pytest.mark.parametrize("package", [transferlens, inspector, tutorial], ids=lambda p: p.__name__)
def test_public_names_say_where_users_get_them(package: object) -> None:
    """As httpx does: ``transferlens.LensError`` in a traceback, not the private module."""
    for name in package.__all__:  # type: ignore[attr-defined]
        value = getattr(package, name)
        if isinstance(value, type) or callable(value):
            assert value.__module__ == package.__name__, f"{name}: {value.__module__}"  # type: ignore[attr-defined]


def test_a_traceback_names_the_public_error() -> None:
    code = "import transferlens\ntransferlens.create_head(0, 2)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("transferlens.LensError: ")


@pytest.mark.parametrize("package", [transferlens, inspector], ids=lambda p: p.__name__)
def test_the_lazy_table_and_the_type_checking_imports_agree(package: object) -> None:
    """Each face loads its names on first use from ``_EXPORTS``; type checkers and the API
    reference read the ``if TYPE_CHECKING:`` imports. Both must name the same modules."""
    init = Path(package.__file__)  # type: ignore[attr-defined]
    tree = ast.parse(init.read_text(encoding="utf-8"))
    guarded = next(n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in
                   ast.unparse(n.test))  # fmt: skip
    imported = {alias.name: node.module for node in guarded.body if isinstance(node, ast.ImportFrom)
                for alias in node.names}  # fmt: skip
    exports = package._EXPORTS  # type: ignore[attr-defined]
    assert imported == {name: module for name, module in exports.items()}
    assert package.__all__ == list(exports)  # type: ignore[attr-defined]


def test_import_transferlens_and_the_command_s_help_import_no_torch() -> None:
    code = (
        "import sys, transferlens\n"
        "from transferlens.inspector.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'fastai'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)  # fmt: skip
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert "usage: transferlens" in result.stdout


def test_recipe_files_say_what_they_need_beside_them() -> None:
    """A reader copies one concept from one file: its docstring's "Needs beside it:" line names
    exactly the recipe files it imports."""
    for path in _modules("_recipe"):
        if path.name == "__init__.py":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        paragraphs = [p.replace("\n", " ") for p in doc.split("\n\n")]
        line = next((p for p in paragraphs if p.startswith("Needs beside it:")), None)
        assert line is not None, f"{path.name}: no 'Needs beside it:' line in its docstring"
        named = set(re.findall(r"``(\w+)\.py``", line))
        imported = {module.rsplit(".", 1)[1] for module, _, _ in _transferlens_imports(path)}
        assert named == imported, f"{path.name}: says {sorted(named)}, imports {sorted(imported)}"


def test_tests_import_public_names_from_the_public_faces() -> None:
    """Tests use what users use: a public name comes from ``transferlens`` (or
    ``transferlens.inspector`` / ``transferlens.tutorial``), never from the module behind it."""
    public = {*transferlens.__all__, *inspector.__all__, *tutorial.__all__}
    faces = {"transferlens", "transferlens.inspector", "transferlens.tutorial",
             "transferlens.inspector.cli"}  # fmt: skip
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transferlens"):
                if node.module in faces:
                    continue
                leaked = {alias.name for alias in node.names} & public
                assert not leaked, f"{path.name} imports {sorted(leaked)} from {node.module}"
